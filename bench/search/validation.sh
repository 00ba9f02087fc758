#!/usr/bin/env bash
# Which plans to validate, on how many windows of what length (issue 15)?
# For every model in ../shared/models (or $MODELS), every calibration seed and
# every variant, the default search (loss-weighted minsum, no low-rank) at
# 2.5 / 3.0 / 3.5 / 4.25 bpw and at uniform 2b-g32's and 3b-g64's own budgets.
# A variant is PLANS:WINDOWS:SEQLEN, i.e. --validate-plans, --validate-windows
# and --validate-seqlen (0: the calibration's). Measurements are shared with
# bench/search/evidence.sh (the same work folders, --resume), so after it this
# script only packs, validates and evaluates.
# Prints one table per model: seed-mean ppl +- half the seeds' spread per
# budget, `*` at or below the piecewise-linear uniform front, and which plan
# each seed kept (s minsum, x minmax, w minmax-weighted, u minsum-unweighted,
# f front).
# Usage: bench/search/validation.sh [build dir] [shared dir]
#   SEEDS="0 1 2"  MODELS="stories260K wikikjv-llama"  EVAL_WINDOWS=200
#   VARIANTS="front,minmax:16:0 ..."  (default below)  BUDGETS="2.5 3.0 3.5 4.25"
#   CALIB_SAMPLES=128  OUT=out/bench-validation  EVIDENCE_OUT=out/bench-search
#   (evidence.sh's OUT: the uniform runs and the measurements)
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/search/common.sh
variants=${VARIANTS:-front,minmax:16:0 front,minmax,minmax-weighted:16:0 front,minmax,minmax-weighted,minsum-unweighted:16:0 front,minmax,minmax-weighted,minsum-unweighted:64:0 front,minmax:16:512 front,minmax,minmax-weighted,minsum-unweighted:48:512}
evidence=${EVIDENCE_OUT:-out/bench-search}
out=${OUT:-out/bench-validation}
mkdir -p "$out"

run() {  # run MODEL SEED REPORT ARGS...: one quantization (measurement shared with evidence.sh)
  local model=$1 seed=$2 report=$3
  shift 3
  [[ -s $report ]] && return 0
  mkdir -p "$(dirname "$report")"
  "$amlq" quantize "$shared/models/$model" --calib "$calib" --calib-samples "$calib_samples" --calib-seqlen 256 --calib-seed "$seed" \
    --eval "$test" --eval-seqlen 512 --eval-max-windows "$eval_windows" --recipes default --lowrank none \
    --work-dir "$evidence/$model/s$seed/work-none" --resume --out "${report%.json}.h5" --report "$report" "$@" \
    >"${report%.json}.txt" 2>"${report%.json}.log" || { echo "$report failed: $(tail -1 "${report%.json}.log")" >&2; return 1; }
  rm -f "${report%.json}.h5"
}

for model in $models; do
  for seed in $seeds; do
    echo "[$(date +%T)] $model seed $seed" >&2
    own=()
    for spec in "${uniform_specs[@]}"; do
      run "$model" "$seed" "$evidence/$model/s$seed/uniform-$spec.json" --search "uniform:$spec" --target-bpw 8
    done
    for spec in 2b-g32 3b-g64; do own+=("$(own_budget "$evidence/$model/s$seed/uniform-$spec.json")"); done
    for variant in $variants; do
      IFS=: read -r plans windows seqlen <<<"$variant"
      for b in "${budgets[@]}" "${own[@]}"; do
        run "$model" "$seed" "$out/$model/$variant/s$seed/$b.json" --search minsum --target-bpw "$b" \
          --validate-plans "$plans" --validate-windows "$windows" --validate-seqlen "$seqlen"
      done
    done
  done
done

python3 - "$evidence" "$out" "$models" "$seeds" "$variants" <<'PY'
import glob, json, os, sys
evidence, out, models, seeds, variants = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split(), sys.argv[5].split()
letter = {"minsum": "s", "minmax": "x", "minmax-weighted": "w", "minsum-unweighted": "u"}
for model in models:
    uniform = []
    for spec in ("2b-g32", "3b-g64", "3b-g32", "4b-g64", "4b-g32"):
        rs = [json.load(open(f"{evidence}/{model}/s{s}/uniform-{spec}.json")) for s in seeds]
        uniform.append((sum(r["achieved_bpw"] for r in rs) / len(rs), sum(r["quantized_ppl"] for r in rs) / len(rs)))
    uniform.sort()
    def front_at(x):  # the piecewise-linear uniform front (seed means), as evidence.sh
        ys = [y0 + (y1 - y0) * (x - x0) / (x1 - x0) for (x0, y0), (x1, y1) in zip(uniform, uniform[1:]) if x0 <= x <= x1 and x1 > x0]
        return min(ys) if ys else None
    budgets = sorted({os.path.basename(p)[:-5] for p in glob.glob(f"{out}/{model}/{variants[0]}/s{seeds[0]}/*.json")}, key=float)
    small = uniform[-1][1] < 50
    fmt = ".3f" if small else ".2f"
    print(f"\n### {model} ({len(seeds)} seeds; ppl seed mean +- half the spread, `*` at or below the uniform front; plans kept per seed)\n")
    print("| --validate-plans | windows | seqlen | " + " | ".join(budgets) + " |")
    print("|---|---|---|" + "---|" * len(budgets))
    front = [front_at(float(b)) for b in budgets]
    print("| uniform front | | | " + " | ".join("-" if f is None else f"{f:{fmt}}" for f in front) + " |")
    for variant in variants:
        plans, windows, seqlen = variant.split(":")
        cells = []
        for b, f in zip(budgets, front):
            paths = [f"{out}/{model}/{variant}/s{s}/{b}.json" for s in seeds]
            if not all(os.path.exists(p) for p in paths):
                cells.append("-")
                continue
            rs = [json.load(open(p)) for p in paths]
            ppl = [r["quantized_ppl"] for r in rs]
            mean, half = sum(ppl) / len(ppl), (max(ppl) - min(ppl)) / 2
            kept = "".join(letter.get(next(p["method"] for p in r["validation"]["plans"] if p["chosen"]), "f") for r in rs)
            cells.append(f"{mean:{fmt}} +- {half:{fmt}}{' *' if f is not None and mean <= f else ''} ({kept})")
        print(f"| {plans} | {windows} | {seqlen if seqlen != '0' else 'calib'} | " + " | ".join(cells) + " |")
PY
