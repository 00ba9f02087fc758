#!/usr/bin/env bash
# A rank that fails ends the job within seconds with its message, no output file
# is left, and --resume then finishes with the same model as an uninterrupted run.
set -euo pipefail
amlq=$1 shared=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
args=(quantize "$shared/models/stories260K" --calib "$shared/data/wikitext2/valid.tok512.u16" --calib-samples 16
  --calib-seqlen 128 --target-bpw 3.0 --recipes fast --threads 1)
mpirun -np 3 --oversubscribe "$amlq" "${args[@]}" --out "$work/ref.h5" >/dev/null 2>&1
start=$(date +%s)
set +e
timeout 60 mpirun -np 3 --oversubscribe "$amlq" "${args[@]}" --out "$work/m.h5" \
  --debug-fail-rank 2 --debug-fail-stage measure >"$work/fail.out" 2>&1
rc=$?
set -e
elapsed=$(($(date +%s) - start))
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || { echo "failing job exited $rc"; cat "$work/fail.out"; exit 1; }
[ "$elapsed" -le 30 ] || { echo "failing job took ${elapsed}s"; exit 1; }
grep -q "on rank 2: injected failure" "$work/fail.out" || { echo "rank 2's message did not reach rank 0:"; cat "$work/fail.out"; exit 1; }
[ ! -e "$work/m.h5" ] || { echo "a failed job left the output file"; exit 1; }
ls "$work" | grep -q "m.h5.tmp" && { echo "a failed job left a temporary file"; exit 1; }
mpirun -np 3 --oversubscribe "$amlq" "${args[@]}" --out "$work/m.h5" --resume >"$work/resume.out" 2>&1
grep -q "resumed *calibrate" "$work/resume.out" || { echo "resume did not reuse calibration"; cat "$work/resume.out"; exit 1; }
h5diff "$work/ref.h5" "$work/m.h5" || { echo "resumed model differs from the uninterrupted one"; exit 1; }
echo "fault test passed in ${elapsed}s"
