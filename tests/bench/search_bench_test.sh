#!/usr/bin/env bash
# Short versions of bench/search/evidence.sh and bench/search/validation.sh
# (label model; the full runs take 10-100 minutes): one seed of stories260K, 16
# calibration samples, 4 evaluation windows, one budget and both uniform
# budgets. Checks that each prints its table and picture, and that
# validation.sh's default variant packs what evidence.sh's minsum+validation
# runs packed (the same measurement, the same plans, the same perplexity).
set -euo pipefail
build=$1 shared=$2 work=$3 src=$4
rm -rf "$work" && mkdir -p "$work"
export MODELS=stories260K SEEDS=0 EVAL_WINDOWS=4 CALIB_SAMPLES=16 BUDGETS=3.0

OUT=$work/evidence METHODS="minsum minsum+validation" LOWRANKS=none \
  "$src/bench/search/evidence.sh" "$build" "$shared" >"$work/evidence.md" 2>"$work/evidence.log" || {
  echo "evidence.sh failed:"; tail -5 "$work/evidence.log"; exit 1; }
for spec in 2b-g32 3b-g64 3b-g32 4b-g64 4b-g32; do
  grep "^| uniform GPTQ |" "$work/evidence.md" | grep -q " $spec " || {
    echo "evidence.sh's uniform table lacks $spec:"; cat "$work/evidence.md"; exit 1; }
done
for series in "minsum (no low-rank)" "minsum+validation (no low-rank)"; do
  cells=$(grep -F "| $series |" "$work/evidence.md" | tr '|' '\n' | grep -c "+-" || true)
  [[ $cells == 3 ]] || { echo "evidence.sh: '$series' has $cells cells, expected 3"; cat "$work/evidence.md"; exit 1; }
done
grep -q "Pearson r" "$work/evidence.md" || { echo "evidence.sh printed no correlation"; exit 1; }
test -s "$work/evidence/stories260K.svg" || { echo "evidence.sh drew no picture"; exit 1; }

OUT=$work/validation EVIDENCE_OUT=$work/evidence VARIANTS="front,minmax:16:0 front,minmax-weighted:4:64" \
  "$src/bench/search/validation.sh" "$build" "$shared" >"$work/validation.md" 2>"$work/validation.log" || {
  echo "validation.sh failed:"; tail -5 "$work/validation.log"; exit 1; }
grep -q "^| uniform front | | |" "$work/validation.md" || { echo "validation.sh printed no front row"; cat "$work/validation.md"; exit 1; }
grep -q "^| front,minmax-weighted | 4 | 64 | .*([sxwuf])" "$work/validation.md" || {
  echo "validation.sh printed no row for the second variant"; cat "$work/validation.md"; exit 1; }
python3 - "$work" <<'PY'
import glob, json, os, sys
work = sys.argv[1]
runs = sorted(glob.glob(f"{work}/validation/stories260K/front,minmax:16:0/s0/*.json"))
assert len(runs) == 3, runs
for path in runs:
    budget = os.path.basename(path)[:-5]
    a = json.load(open(path))
    b = json.load(open(f"{work}/evidence/stories260K/s0/minsum+validation-none-{budget}.json"))
    assert a["quantized_ppl"] == b["quantized_ppl"], (budget, a["quantized_ppl"], b["quantized_ppl"])
    assert a["validation"]["plans"] == b["validation"]["plans"], budget
PY
echo "search bench checks passed"
