# Settings and helpers shared by bench/search/evidence.sh and validation.sh
# (sourced from the repository root; $1 and $2 are the scripts' own arguments).
build=${1:-build}
shared=${2:-../shared}
amlq=$build/bin/amlq
seeds=${SEEDS:-0 1 2}
models=${MODELS:-$(ls "$shared/models")}
eval_windows=${EVAL_WINDOWS:-200}
calib_samples=${CALIB_SAMPLES:-128}
read -r -a budgets <<<"${BUDGETS:-2.5 3.0 3.5 4.25}"
calib=$shared/data/wikitext2/valid.tok512.u16
test=$shared/data/wikitext2/test.tok512.u16
uniform_specs=(2b-g32 3b-g64 3b-g32 4b-g64 4b-g32)

# own_budget REPORT: a uniform run's bpw rounded up to 1e-6, so that the
# uniform plan itself fits a search at that budget.
own_budget() {
  python3 -c "import json,math,sys; print(f'{math.ceil(json.load(open(sys.argv[1]))[\"achieved_bpw\"] * 1e6) / 1e6:.6f}')" "$1"
}
