#!/usr/bin/env bash
# Checkpoints that cannot lie (issue 14 item 3): every kind of checkpoint a
# resumed run reads (measure/layer_NNNNN.json, measure.json, pack/layer_NNNNN.h5
# with its seal, the cached FP perplexity) is truncated,
# bit-flipped, or swapped with the same file of a run on other inputs. The
# resumed run must warn naming the file, recompute, and write exactly the model
# of an uninterrupted run. (plan.json is not in the list: the search is redone by
# every run in milliseconds and plan.json rewritten, never read back.)
set -euo pipefail
amlq=$1 shared=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
export AMLQ_CACHE_DIR="$work/cache"
base=(quantize "$shared/models/stories260K" --calib "$shared/data/wikitext2/valid.tok512.u16" --calib-samples 16
  --calib-seqlen 128 --target-bpw 3.0 --recipes fast --threads 1
  --eval "$shared/data/wikitext2/test.tok512.u16" --eval-seqlen 128 --eval-max-windows 4)
run() { "$amlq" "${base[@]}" "$@"; }

run --out "$work/ref.h5" --report "$work/ref.json" >/dev/null 2>"$work/ref.log"
# The same files from a run on other inputs (another calibration seed).
run --out "$work/other.h5" --calib-seed 7 >/dev/null 2>"$work/other.log"
# Pack checkpoints exist only while a run is unfinished: fail after the first packed layer.
run --out "$work/part.h5" --debug-fail-rank 0 --debug-fail-stage pack >/dev/null 2>"$work/part.log" && { echo "injected failure did not fail"; exit 1; }
[[ -f $work/part.h5.work/pack/layer_00000.h5 ]] || { echo "no pack checkpoint to corrupt"; ls -R "$work/part.h5.work"; exit 1; }
cache_file=$(find "$work/cache" -type f -name '*.json' | head -1)
[[ -n $cache_file ]] || { echo "no cached FP perplexity"; exit 1; }

corrupt() {  # FILE MODE OTHER
  local f=$1 mode=$2 other=$3 size
  size=$(stat -c %s "$f")
  case $mode in
    truncate) truncate -s $((size / 2)) "$f" ;;
    flip) python3 - "$f" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
i = len(b) // 2
# A digit stays a digit (a JSON that still parses), anything else flips a bit.
b[i] = ord("7") if chr(b[i]).isdigit() and b[i] != ord("7") else (ord("3") if chr(b[i]).isdigit() else b[i] ^ 0x04)
open(p, "wb").write(bytes(b))
PY
    ;;
    swap) cp "$other" "$f" ;;
  esac
}

cases=0
check_case() {  # NAME WORKDIR_SOURCE RELATIVE_FILE MODE OTHER_FILE
  local name=$1 source=$2 rel=$3 mode=$4 other=$5
  local dir="$work/case-$name-$mode"
  rm -rf "$dir" && mkdir -p "$dir"
  cp -r "$source" "$dir/m.h5.work"
  # Per-layer rows are read only when the whole table is missing (a job stopped mid-measure).
  [[ $name == measure-layer ]] && rm -f "$dir/m.h5.work/measure.json" "$dir/m.h5.work/plan.json"
  local target="$dir/m.h5.work/$rel"
  [[ $rel == cache ]] && target=$cache_file && cp "$cache_file" "$work/cache.bak"
  corrupt "$target" "$mode" "$other"
  run --out "$dir/m.h5" --resume >/dev/null 2>"$dir/resume.log" || { echo "$name/$mode: resume failed"; tail "$dir/resume.log"; exit 1; }
  grep -q "warning.*$(basename "$target")" "$dir/resume.log" ||
    { echo "$name/$mode: no warning naming $(basename "$target")"; cat "$dir/resume.log"; exit 1; }
  h5diff "$work/ref.h5" "$dir/m.h5" >/dev/null || { echo "$name/$mode: the resumed model differs"; exit 1; }
  [[ $rel == cache ]] && cp "$work/cache.bak" "$cache_file"
  cases=$((cases + 1))
}

for mode in truncate flip swap; do
  check_case measure-layer "$work/ref.h5.work" measure/layer_00002.json "$mode" "$work/other.h5.work/measure/layer_00002.json"
  check_case measure-table "$work/ref.h5.work" measure.json "$mode" "$work/other.h5.work/measure.json"
  check_case pack-layer "$work/part.h5.work" pack/layer_00000.h5 "$mode" "$work/ref.h5"
  check_case fp-cache "$work/ref.h5.work" cache "$mode" "$work/other.h5.work/plan.json"
done
echo "checkpoint corruption test passed ($cases cases)"
