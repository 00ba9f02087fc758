#!/usr/bin/env bash
# -np 1, 2, 3 (uneven split) and 4 with 2 replicas give the same model (label mpi),
# also with every MPI payload forced into tiny chunks (AMLQ_MPI_CHUNK_BYTES, the
# path 70B-sized Hessians and hidden states take), with true-sequential packing,
# and with memory turns (ranks of a host walking their statistics one stage at a time);
# the plan validation's scores are the same for every layout.
set -euo pipefail
amlq=$1 shared=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
args=(quantize "$shared/models/stories260K" --calib "$shared/data/wikitext2/valid.tok512.u16" --calib-samples 32
  --calib-seqlen 128 --target-bpw 3.0 --recipes fast --threads 1)
run() {  # name, ranks, extra args...
  local name=$1 np=$2
  shift 2
  mpirun -np "$np" --oversubscribe -x AMLQ_MPI_CHUNK_BYTES "$amlq" "${args[@]}" --out "$work/$name.h5" \
    --report "$work/$name.json" "$@" >"$work/$name.out" 2>"$work/$name.log" ||
    { echo "run $name failed:"; tail -20 "$work/$name.log"; exit 1; }
}
same() {  # reference, others...
  local ref=$1
  shift
  for other in "$@"; do
    h5diff "$work/$ref.h5" "$work/$other.h5" || { echo "$ref and $other differ"; exit 1; }
  done
}
export AMLQ_MPI_CHUNK_BYTES=
run np1 1
run np2 2
run np3 3
run np4r2 4 --replicas 2
same np1 np2 np3 np4r2
# The plan validation scored every candidate alike whatever the layout.
python3 - "$work"/np1.json "$work"/np2.json "$work"/np3.json "$work"/np4r2.json <<'PY'
import json, sys
v = [json.load(open(p))["validation"] for p in sys.argv[1:]]
assert len(v[0]["plans"]) >= 2, v[0]
assert all(x == v[0] for x in v), v
PY
grep -q "2 replica(s) x 2 pipeline stage(s)" "$work/np4r2.log" || { echo "np4r2 did not run 2 x 2"; exit 1; }

# Tiny chunks: every broadcast, gather, send and Hessian node in pieces of 4 KiB.
export AMLQ_MPI_CHUNK_BYTES=4096
run np2c 2
run np3c 3
run np4r2c 4 --replicas 2
same np1 np2c np3c np4r2c

# True-sequential packing moves statistics and packed layers between replicas per site.
run np1t 1 --sequential true
run np3t 3 --sequential true
run np4r2t 4 --replicas 2 --sequential true
same np1t np3t np4r2t
# Memory turns change when a rank works, never what it computes: three stages in
# turn, and 2 replicas x 2 stages holding their turns by stage (true-sequential).
run np3m 3 --memory-turns on
run np4r2tm 4 --replicas 2 --sequential true --memory-turns on
same np1 np3m
same np1t np4r2tm
grep -q "memory turns on" "$work/np3m.log" || { echo "np3m took no memory turns"; exit 1; }
if h5diff -q "$work/np1.h5" "$work/np1t.h5" >/dev/null 2>&1; then
  echo "--sequential true produced the same model as none"; exit 1
fi
echo "all rank layouts produced identical models (also with 4 KiB MPI chunks, true-sequential packing and memory turns)"
