#!/usr/bin/env bash
# -np 1, 2, 3 (uneven split) and 4 with 2 replicas give the same model (label mpi).
set -euo pipefail
amlq=$1 shared=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
args=(quantize "$shared/models/stories260K" --calib "$shared/data/wikitext2/valid.tok512.u16" --calib-samples 32
  --calib-seqlen 128 --target-bpw 3.0 --recipes fast --threads 1)
run() {  # name, ranks, extra args...
  local name=$1 np=$2
  shift 2
  mpirun -np "$np" --oversubscribe "$amlq" "${args[@]}" --out "$work/$name.h5" --report "$work/$name.json" "$@" \
    >"$work/$name.out" 2>"$work/$name.log" || { echo "run $name failed:"; tail -20 "$work/$name.log"; exit 1; }
}
run np1 1
run np2 2
run np3 3
run np4r2 4 --replicas 2
for other in np2 np3 np4r2; do
  h5diff "$work/np1.h5" "$work/$other.h5" || { echo "np1 and $other differ"; exit 1; }
done
grep -q "2 replica(s) x 2 pipeline stage(s)" "$work/np4r2.log" || { echo "np4r2 did not run 2 x 2"; exit 1; }
echo "all rank layouts produced identical models"
