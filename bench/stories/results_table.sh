#!/usr/bin/env bash
# The README's results table on stories260K: every row is one `amlq` command
# (printed in the last column's footnote list), evaluated on WikiText-2 test at
# seqlen 512 (all 1591 windows). Usage: bench/stories/results_table.sh [build dir] [shared dir]
# Prints a Markdown table on stdout; logs and reports go to out/bench-stories/.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
shared=${2:-../shared}
amlq=$build/bin/amlq
model=$shared/models/stories260K
calib=$shared/data/wikitext2/valid.tok512.u16
test=$shared/data/wikitext2/test.tok512.u16
out=out/bench-stories
mkdir -p "$out"
rows=()
commands=()

# run NAME ARGS...: one quantization; the report gives bpw, perplexity and time.
run() {
  local name=$1
  shift
  local args=(quantize "$model" --calib "$calib" --calib-samples 128 --calib-seqlen 256 --eval "$test"
    --eval-seqlen 512 --out "$out/$name.h5" --report "$out/$name.json" "$@")
  commands+=("amlq ${args[*]}")
  "$amlq" "${args[@]}" >"$out/$name.txt" 2>"$out/$name.log" || { echo "$name failed: $(tail -1 "$out/$name.log")" >&2; return 1; }
  rows+=("$(python3 - "$out/$name.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["seconds"]
print(f'| {sys.argv[2]} | {r["achieved_bpw"]:.3f} | {r["quantized_ppl"]:.2f} | {s["total"] - s["eval"]:.1f} |')
PY
)")
}

start=$(date +%s.%N)
fp=$("$amlq" eval "$model" --data "$test" --seqlen 512 --json 2>/dev/null)
fp_s=$(python3 -c "import time,sys; print(f'{time.time()-float(sys.argv[1]):.1f}')" "$start")
fp_ppl=$(python3 -c "import json,sys; print(f'{json.loads(sys.argv[1])[\"perplexity\"]:.2f}')" "$fp")
rows+=("| FP32 | 32.000 | $fp_ppl | $fp_s (eval) |")
commands+=("amlq eval $model --data $test --seqlen 512")

for q in rtn gptq; do
  for b in 4 3 2; do
    for g in 32 64; do
      run "$q-${b}b-g$g" --quantizer "$q" --lowrank none --recipes fast --search "uniform:${b}b-g$g" --target-bpw 8
    done
  done
done
for lr in svd l2qer whiten; do
  run "gptq-3b-g64-$lr-r8" --lowrank "$lr" --recipes fast --search uniform:3b-g64-r8 --target-bpw 8
done
# Each search's own plan (--validate-windows 0), then the default: minsum's plan
# validated against the uniform-front plan and minmax's on held-out windows.
for search in minmax minmax-weighted minsum-unweighted minsum; do
  for bpw in 2.5 3.0 3.5 4.25; do
    run "$search-$bpw" --lowrank whiten --recipes default --search "$search" --validate-windows 0 --target-bpw "$bpw"
  done
done
for bpw in 2.5 3.0 3.5 4.25; do
  run "default-$bpw" --lowrank whiten --recipes default --target-bpw "$bpw"
done

echo "| configuration | bpw | WikiText-2 ppl (seqlen 512) | seconds (quantize) |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "Commands (in row order):"
printf '    %s\n' "${commands[@]}"
