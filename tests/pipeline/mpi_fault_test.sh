#!/usr/bin/env bash
# A rank that fails ends the job within seconds with its message, no output file
# is left, and --resume then finishes with the same model as an uninterrupted run,
# reusing the layers measured (or packed) before the failure.
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
grep -q "resumed *measure (" "$work/resume.out" || { echo "resume did not reuse measured layers"; cat "$work/resume.out"; exit 1; }
h5diff "$work/ref.h5" "$work/m.h5" || { echo "resumed model differs from the uninterrupted one"; exit 1; }

# The same for a failure in the pack pass: measure and search are reused, packed layers too.
rm -f "$work/m.h5"
set +e
timeout 60 mpirun -np 3 --oversubscribe "$amlq" "${args[@]}" --out "$work/m.h5" --resume \
  --debug-fail-rank 1 --debug-fail-stage pack >"$work/fail2.out" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || { echo "failing pack exited $rc"; cat "$work/fail2.out"; exit 1; }
[ ! -e "$work/m.h5" ] || { echo "a failed pack left the output file"; exit 1; }
mpirun -np 3 --oversubscribe "$amlq" "${args[@]}" --out "$work/m.h5" --resume >"$work/resume2.out" 2>"$work/resume2.log"
grep -q "resumed .*pack (" "$work/resume2.out" || { echo "resume did not reuse packed layers"; cat "$work/resume2.out"; exit 1; }
h5diff "$work/ref.h5" "$work/m.h5" || { echo "model resumed after a pack failure differs"; exit 1; }
ls "$work/m.h5.work/pack" | grep -q . && { echo "pack checkpoints were left behind"; ls "$work/m.h5.work/pack"; exit 1; }
echo "fault test passed in ${elapsed}s"
