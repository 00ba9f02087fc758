#!/usr/bin/env bash
# A CI-sized version of bench/scaling/run_70b_slice.sh (label model): a synthetic
# Llama with wide layers quantized at -np 1 and -np 2; every rank's measured peak
# RSS must stay under the memory formula's prediction (pipeline/resources.h,
# docs/DISTRIBUTED.md), and not far below it either (the prediction is meant to be
# tight, within 25%). At -np 2 with --memory-turns on, the second stage's walks
# start only after the first stage's have ended, and the model is the same.
set -euo pipefail
amlq=$1 maker=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
"$maker" --out "$work/model" --layers 2 --hidden 1024 --intermediate 3072 --heads 8 --kv-heads 4 --vocab 2048 \
  --calib-ids "$work/ids.u32" --calib-tokens 40000 >/dev/null
cat >"$work/recipes.toml" <<'TOML'
name = "memory-test"
ranks = [0]
bits = [4]
groups = [128]
act_order = true
TOML
args=(quantize "$work/model" --calib "$work/ids.u32" --calib-samples 8 --calib-seqlen 256 --recipes "$work/recipes.toml"
  --target-bpw 4.25 --threads 1)
mpirun -np 1 "$amlq" "${args[@]}" --out "$work/np1.h5" --report "$work/np1.json" >"$work/np1.out" 2>"$work/np1.log" ||
  { tail -20 "$work/np1.log"; exit 1; }
mpirun -np 2 --oversubscribe "$amlq" "${args[@]}" --out "$work/np2.h5" --report "$work/np2.json" >"$work/np2.out" 2>"$work/np2.log" ||
  { tail -20 "$work/np2.log"; exit 1; }
mpirun -np 2 --oversubscribe "$amlq" "${args[@]}" --memory-turns on --out "$work/np2t.h5" --report "$work/np2t.json" \
  >"$work/np2t.out" 2>"$work/np2t.log" || { tail -20 "$work/np2t.log"; exit 1; }
h5diff "$work/np1.h5" "$work/np2.h5" || { echo "np1 and np2 differ"; exit 1; }
h5diff "$work/np1.h5" "$work/np2t.h5" || { echo "np1 and np2 with memory turns differ"; exit 1; }
python3 - "$work/np1.json" "$work/np2.json" "$work/np2t.json" <<'PY'
import json, sys
turns = json.load(open(sys.argv[3]))["resources"]
assert turns["memory_turns"], "the np2t run took no memory turns"
r0, r1 = turns["ranks"]
assert r1["turn_started_unix"] >= r0["turn_ended_unix"], \
    f"rank 1's pack walk started at {r1['turn_started_unix']}, before rank 0's ended at {r0['turn_ended_unix']}"
assert r1["turn_waited_seconds"] > 0 and r0["turn_waited_seconds"] == 0, "only stage 1 waits for its turn"
print(f"memory turns: rank 1 waited {r1['turn_waited_seconds']:.1f}s; its last walk started "
      f"{r1['turn_started_unix'] - r0['turn_ended_unix']:.3f}s after rank 0's ended")
for path in sys.argv[1:]:
    ranks = json.load(open(path))["resources"]["ranks"]
    for r in ranks:
        peak, predicted = r["peak_rss_bytes"], r["predicted_peak_rss_bytes"]
        ratio = peak / predicted
        print(f"{path}: rank {r['rank']} layers {r['layers']}: peak {peak / 2**20:.0f} MiB, "
              f"predicted {predicted / 2**20:.0f} MiB ({r['predicted_peak_phase']}), ratio {ratio:.2f}")
        assert peak <= predicted, f"rank {r['rank']} used more memory than the formula allows"
        assert ratio >= 0.75, f"rank {r['rank']}: the prediction is more than 25% above the measured peak"
PY
echo "peak RSS within the formula on every rank"
