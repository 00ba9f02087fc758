#!/usr/bin/env bash
# End-to-end checks of `amlq quantize` on stories260K (label model):
#  - the JSON report has the documented keys and the budget holds;
#  - `amlq eval model.h5` reproduces the report's quantized perplexity;
#  - --resume after deleting the output reproduces it byte for byte;
#  - --search plan:<the report> packs the same allocation and model again;
#  - the default search validates its plan against the alternatives and packs
#    the one with the lowest held-out NLL, leaving no candidate checkpoints;
#  - --validate-data/--validate-seqlen validate on another file's windows;
#  - a group size larger than a layer, an unknown --validate-plans name and a
#    missing --validate-data file are rejected with a clear error.
set -euo pipefail
amlq=$1 shared=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
model=$shared/models/stories260K
common=(quantize "$model" --calib "$shared/data/wikitext2/valid.tok512.u16" --calib-samples 16 --calib-seqlen 128
  --recipes fast --threads 1 --eval "$shared/data/wikitext2/test.tok512.u16" --eval-max-windows 8)

"$amlq" "${common[@]}" --target-bpw 3.0 --out "$work/m.h5" --report "$work/run.json" >"$work/out.txt" 2>"$work/log.txt"
python3 - "$work/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for key in ("achieved_bpw", "target_bpw", "fp_ppl", "quantized_ppl", "seconds", "layers", "search", "model"):
    assert key in r, f"report lacks {key}"
for stage in ("calibrate", "measure", "search", "pack", "eval", "total"):
    assert stage in r["seconds"], f"seconds lacks {stage}"
assert r["achieved_bpw"] <= r["target_bpw"] + 1e-9, (r["achieved_bpw"], r["target_bpw"])
assert len(r["layers"]) == 35, len(r["layers"])
assert r["quantized_ppl"] > r["fp_ppl"] > 1, (r["fp_ppl"], r["quantized_ppl"])
v = r["validation"]
assert v["windows"] == 16 and len(v["plans"]) >= 2, v
assert v["plans"][0]["method"] == "minsum", v["plans"][0]
assert sum(p["chosen"] for p in v["plans"]) == 1, v
best = min(v["plans"], key=lambda p: p["validation_delta_nll"])
assert best["chosen"], ("packed a plan that validated worse", v)
assert abs(best["bpw"] - r["achieved_bpw"]) < 1e-9, (best, r["achieved_bpw"])
for p in v["plans"]:
    assert p["bpw"] <= r["target_bpw"] + 1e-9 and p["validation_delta_nll"] > 0, p
print(f'{r["quantized_ppl"]:.4f}', file=open(sys.argv[1] + ".ppl", "w"))
PY
grep -q "perplexity" "$work/out.txt" || { echo "report table lacks perplexity"; exit 1; }
grep -q "^validation .*<- packed" "$work/out.txt" || { echo "report table lacks the validation lines"; exit 1; }
left=$(find "$work/m.h5.work/pack" -name 'layer_*' | wc -l)
[[ $left == 0 ]] || { echo "$left pack checkpoint(s) left in $work/m.h5.work/pack"; exit 1; }
test -s "$work/run.svg" || { echo "no allocation picture"; exit 1; }

"$amlq" eval "$work/m.h5" --data "$shared/data/wikitext2/test.tok512.u16" --max-windows 8 >"$work/eval.txt" 2>/dev/null
expected=$(cat "$work/run.json.ppl")
grep -q "perplexity *$expected" "$work/eval.txt" || {
  echo "amlq eval gave '$(grep perplexity "$work/eval.txt")', report said $expected"; exit 1; }

cp "$work/m.h5" "$work/first.h5"
rm "$work/m.h5"
"$amlq" "${common[@]}" --target-bpw 3.0 --out "$work/m.h5" --resume >"$work/out2.txt" 2>"$work/log2.txt"
grep -q "resumed *calibrate, measure, sensitivity, validation" "$work/out2.txt" || {
  echo "resume did not reuse the stages"; cat "$work/out2.txt"; exit 1; }
cmp "$work/first.h5" "$work/m.h5" || { echo "resumed pack is not byte-identical"; exit 1; }

# The report is a plan: packing it again (measuring only its configurations)
# gives the same allocation and the same model.
"$amlq" "${common[@]}" --search "plan:$work/run.json" --work-dir "$work/replan.work" --out "$work/replan.h5" \
  --report "$work/replan.json" >"$work/replan.txt" 2>"$work/replan.log"
python3 - "$work/run.json" "$work/replan.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
pick = lambda r: [(l["name"], l["spec"], l["rank"]) for l in r["layers"]]
assert pick(a) == pick(b), "plan:<report> packed another allocation"
assert b["search"] == "plan:" + sys.argv[1], b["search"]
assert abs(a["quantized_ppl"] - b["quantized_ppl"]) <= 1e-9 * a["quantized_ppl"], (a["quantized_ppl"], b["quantized_ppl"])
PY
grep -q "recipe space 'plan:" "$work/replan.log" || { echo "plan:<file> did not measure only the plan's space"; exit 1; }

set +e
"$amlq" quantize "$model" --calib "$shared/data/wikitext2/valid.tok512.u16" --calib-samples 16 --target-bpw 4 \
  --recipes fast --search uniform:4b-g128 --out "$work/bad.h5" >"$work/bad.txt" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || { echo "uniform:4b-g128 on 64-wide layers was accepted"; exit 1; }
grep -q "4b-g128" "$work/bad.txt" || { echo "error does not name the config:"; cat "$work/bad.txt"; exit 1; }
[ ! -e "$work/bad.h5" ] || { echo "a failed run left an output file"; exit 1; }
# Validation windows from a file of their own, longer than the calibration's;
# the measurement is reused, the validation is not.
"$amlq" "${common[@]}" --target-bpw 3.0 --work-dir "$work/m.h5.work" --resume --out "$work/vd.h5" \
  --report "$work/vd.json" --validate-data "$shared/data/wikitext2/test.tok512.u16" --validate-windows 4 \
  --validate-seqlen 192 >"$work/vd.txt" 2>"$work/vd.log"
python3 - "$work/vd.json" "$shared/data/wikitext2/test.tok512.u16" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))["validation"]
assert (v["windows"], v["seqlen"], v["data"]) == (4, 192, sys.argv[2]), v
assert sum(p["chosen"] for p in v["plans"]) == 1 and all(p["validation_delta_nll"] > 0 for p in v["plans"]), v
PY
grep -q "the FP model on 4 held-out window(s) of 192 tokens" "$work/vd.log" || {
  echo "validation did not run on 4 windows of 192"; cat "$work/vd.log"; exit 1; }
grep -q "resumed *calibrate, measure, sensitivity$" "$work/vd.txt" || {
  echo "--validate-data reused a validation made from other windows"; grep resumed "$work/vd.txt"; exit 1; }

set +e
"$amlq" "${common[@]}" --target-bpw 3.0 --validate-data "$work/no-such-file.u16" --out "$work/bad3.h5" >"$work/bad3.txt" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || { echo "a missing --validate-data file was accepted"; exit 1; }
grep -q "no-such-file.u16" "$work/bad3.txt" || { echo "error does not name the file:"; cat "$work/bad3.txt"; exit 1; }
[ ! -e "$work/bad3.h5" ] || { echo "a rejected command line left an output file"; exit 1; }

set +e
"$amlq" "${common[@]}" --target-bpw 3.0 --validate-plans front,minmix --out "$work/bad2.h5" >"$work/bad2.txt" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || { echo "--validate-plans minmix was accepted"; exit 1; }
grep -q "validate-plans.*minmix" "$work/bad2.txt" || { echo "error does not name the plan:"; cat "$work/bad2.txt"; exit 1; }
[ ! -e "$work/bad2.h5" ] || { echo "a rejected command line left an output file"; exit 1; }
echo "quantize CLI checks passed"
