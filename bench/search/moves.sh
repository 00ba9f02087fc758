#!/usr/bin/env bash
# How well does alpha * delta-eps predict what one bit move costs? (issue 15)
# Starting from uniform GPTQ at BASE (default 3b-g64), every quantized linear in
# turn is moved alone to DOWN (2b-g64) and to UP (4b-g64), packed with
# `--search plan:<file>` and evaluated; the measured NLL change against the
# uniform run is set next to the prediction alpha_l * (eps_new - eps_base).
# Prints one Markdown table per calibration seed and the summary: correlation of
# predicted and measured move costs, how often a move to more bits measured
# worse, and how far the same move's cost moves between seeds.
# Usage: bench/search/moves.sh [build dir] [shared dir]
#   MODEL=stories260K SEEDS="0 1" BASE=3b-g64 DOWN=2b-g64 UP=4b-g64 EVAL_WINDOWS=200
# Output: out/bench-moves/<model>-<base>/. BASE=8b-g64 DOWN=2b-g64 UP=3b-g64 gives
# the cost of each error alone (every other linear at 8 bits, near FP).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
shared=${2:-../shared}
amlq=$build/bin/amlq
model=${MODEL:-stories260K}
seeds=${SEEDS:-0 1}
base=${BASE:-3b-g64}
down=${DOWN:-2b-g64}
up=${UP:-4b-g64}
eval_windows=${EVAL_WINDOWS:-200}
out=out/bench-moves/$model-$base
mkdir -p "$out"

run() {  # run SEED NAME PLAN_FILE
  local seed=$1 name=$2 plan=$3 dir=$out/s$1
  [[ -s $dir/$name.json ]] && return 0
  "$amlq" quantize "$shared/models/$model" --calib "$shared/data/wikitext2/valid.tok512.u16" --calib-samples 128 \
    --calib-seqlen 256 --calib-seed "$seed" --eval "$shared/data/wikitext2/test.tok512.u16" --eval-seqlen 512 \
    --eval-max-windows "$eval_windows" --lowrank none --search "plan:$plan" --work-dir "$dir/work" --resume \
    --out "$dir/$name.h5" --report "$dir/$name.json" >"$dir/$name.txt" 2>"$dir/$name.log" ||
    { echo "$model seed $seed $name failed: $(tail -1 "$dir/$name.log")" >&2; return 1; }
  rm -f "$dir/$name.h5"
}

for seed in $seeds; do
  dir=$out/s$seed
  mkdir -p "$dir/plans"
  echo "[$(date +%T)] $model seed $seed: uniform $base" >&2
  # The uniform run names every linear; its report is the base plan.
  [[ -s $dir/base.json ]] || "$amlq" quantize "$shared/models/$model" --calib "$shared/data/wikitext2/valid.tok512.u16" \
    --calib-samples 128 --calib-seqlen 256 --calib-seed "$seed" --eval "$shared/data/wikitext2/test.tok512.u16" \
    --eval-seqlen 512 --eval-max-windows "$eval_windows" --lowrank none --search "uniform:$base" \
    --work-dir "$dir/work" --resume --out "$dir/base.h5" --report "$dir/base.json" >"$dir/base.txt" 2>"$dir/base.log"
  rm -f "$dir/base.h5"
  mapfile -t names < <(python3 -c "import json,sys; [print(l['name']) for l in json.load(open(sys.argv[1]))['layers']]" "$dir/base.json")
  for i in "${!names[@]}"; do
    for spec in "$down" "$up"; do
      plan=$dir/plans/$i-$spec.json
      python3 - "$dir/base.json" "$i" "$spec" "$plan" <<'PY'
import json, sys
layers = json.load(open(sys.argv[1]))["layers"]
layers[int(sys.argv[2])]["spec"] = sys.argv[3]
json.dump({"layers": [{"name": l["name"], "spec": l["spec"], "rank": 0} for l in layers]}, open(sys.argv[4], "w"))
PY
      run "$seed" "$i-$spec" "$plan"
    done
  done
done

python3 - "$out" "$seeds" "$down" "$up" <<'PY'
import json, math, sys
out, seeds, down, up = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4]
def corr(a, b):
    n = len(a); ma, mb = sum(a) / n, sum(b) / n
    sa = math.sqrt(sum((x - ma) ** 2 for x in a)); sb = math.sqrt(sum((y - mb) ** 2 for y in b))
    return sum((x - ma) * (y - mb) for x, y in zip(a, b)) / (sa * sb) if sa > 0 and sb > 0 else float("nan")
measured = {}  # (seed, linear index, spec) -> measured NLL change
for seed in seeds:
    d = f"{out}/s{seed}"
    b = json.load(open(f"{d}/base.json"))
    b_nll = b["eval"]["measured_delta_nll"]
    print(f"\n### seed {seed}: uniform {b['layers'][0]['spec']} ppl {b['quantized_ppl']:.2f}, NLL +{b_nll:.4f} over FP\n")
    print(f"| linear | alpha | to {down}: predicted | measured | to {up}: predicted | measured |")
    print("|---|---|---|---|---|---|")
    pred, meas, wrong_up = [], [], 0
    for i, l in enumerate(b["layers"]):
        cells = []
        for spec in (down, up):
            r = json.load(open(f"{d}/{i}-{spec}.json"))
            p = r["predicted_delta_nll"] - b["predicted_delta_nll"]
            m = r["eval"]["measured_delta_nll"] - b_nll
            measured[(seed, i, spec)] = m
            pred.append(p); meas.append(m)
            if spec == up and m > 0: wrong_up += 1
            cells += [f"{p:+.4f}", f"{m:+.4f}"]
        print(f"| {l['name']} | {l['alpha']:.3f} | " + " | ".join(cells) + " |")
    n = len(b["layers"])
    print(f"\nseed {seed}: predicted vs measured move cost, Pearson r = {corr(pred, meas):.3f} over {len(pred)} moves; "
          f"sum of the {n} moves to {down}: predicted {sum(pred[0::2]):+.3f}, measured {sum(meas[0::2]):+.3f}; "
          f"to {up}: predicted {sum(pred[1::2]):+.3f}, measured {sum(meas[1::2]):+.3f}, "
          f"{wrong_up} of {n} measured worse than {b['layers'][0]['spec']}")
if len(seeds) > 1:
    s0, s1 = seeds[0], seeds[1]
    diffs = [abs(measured[(s0, i, s)] - measured[(s1, i, s)]) for (ss, i, s) in measured if ss == s0]
    diffs.sort()
    print(f"\nThe same move between seeds {s0} and {s1}: median |difference| {diffs[len(diffs) // 2]:.4f} nats, "
          f"largest {diffs[-1]:.4f} (a move's measured cost, median |value| "
          f"{sorted(abs(v) for v in measured.values())[len(measured) // 2]:.4f})")
PY
