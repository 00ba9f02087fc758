#!/usr/bin/env bash
# Issue 15 item 5: uniform GPTQ on stories260K at the reference's calibration
# windows (128 consecutive windows of 256 tokens from the start of WikiText-2
# valid), packed with --sequential none / layer / true, against the reference
# implementation's (IST-DASLab/gptq llama.py --true-sequential) perplexities as
# issue 15 measured them. Evaluation: all of WikiText-2 test at 512 (1591 windows).
# Prints one Markdown table.
# Usage: bench/search/true_sequential.sh [build dir] [shared dir]   (SPECS="4b-g32 3b-g32 ...")
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
shared=${2:-../shared}
amlq=$build/bin/amlq
model=$shared/models/stories260K
out=out/bench-true-sequential
mkdir -p "$out"
specs=(${SPECS:-4b-g32 3b-g32 3b-g64 3b-g64-noact 2b-g32})
modes=(none layer true)

for spec in "${specs[@]}"; do
  for mode in "${modes[@]}"; do
    name=$spec-$mode
    [[ -s $out/$name.json ]] && continue
    echo "[$(date +%T)] $name" >&2
    "$amlq" quantize "$model" --calib "$shared/data/wikitext2/valid.tok512.u16" --calib-samples 128 --calib-seqlen 256 \
      --calib-consecutive --search "uniform:$spec" --target-bpw 8 --lowrank none --sensitivity-windows 0 \
      --sequential "$mode" --eval "$shared/data/wikitext2/test.tok512.u16" --eval-seqlen 512 \
      --work-dir "$out/work-$spec" --resume --out "$out/$name.h5" --report "$out/$name.json" \
      >"$out/$name.txt" 2>"$out/$name.log" || { echo "$name failed: $(tail -1 "$out/$name.log")" >&2; exit 1; }
    rm -f "$out/$name.h5"
  done
done

python3 - "$out" "${specs[*]}" <<'PY'
import json, sys
out, specs = sys.argv[1], sys.argv[2].split()
# The reference's true-sequential ppl as issue 15 measured it (act-order unless -noact).
ref = {"3b-g64-noact": 142.1, "3b-g32": 148.5, "2b-g32": 624.0}
print("| spec | sequential none | layer | true | reference true-sequential | true vs reference |")
print("|---|---|---|---|---|---|")
for spec in specs:
    ppl = {m: json.load(open(f"{out}/{spec}-{m}.json"))["quantized_ppl"] for m in ("none", "layer", "true")}
    r = ref.get(spec)
    gap = f"{(ppl['true'] / r - 1) * 100:+.1f}%" if r else "-"
    print(f"| {spec} | {ppl['none']:.2f} | {ppl['layer']:.2f} | {ppl['true']:.2f} | {r if r else '-'} | {gap} |")
PY
