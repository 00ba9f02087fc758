#!/usr/bin/env bash
# 70B-shape slice benchmark (issue 11): two decoder layers of Llama-2-70B shape
# (hidden 8192, intermediate 28672, 64/8 heads, vocab 32000), bf16 in HF shards,
# quantized end to end (calibrate, measure a one-spec recipe, search, pack, eval
# on a few windows) at -np 1 and -np 2. Prints, per rank: measured peak RSS next to
# the run's own prediction (the formula of docs/DISTRIBUTED.md), the work-dir
# bytes, and seconds per stage; then checks that both runs wrote the same file.
#   bench/scaling/run_70b_slice.sh [BUILD_DIR]      (default: build)
# At -np 2 the two ranks would need 35.7 GiB at once, so they take memory turns
# (--memory-turns auto; docs/DISTRIBUTED.md): the table also shows the host's
# sampled peak (the sum of the ranks' RSS) next to the plan's per-host figure.
# Environment: RUNS="np1 np2" (which runs), SAMPLES=8 SEQLEN=256 (calibration),
# THREADS=2 (worker threads per rank; with turns one rank works at a time), LAYERS=2,
# OUT (output folder, default out/bench-70b-slice), MAKER_ARGS (extra flags for
# make_synthetic_model, e.g. "--hidden 256 --intermediate 512" for a smoke test).
# Takes about 2.2 h per run on a 2-core machine (bench/RESULTS.md); needs ~10 GB of disk under out/.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
amlq="$build/bin/amlq"
maker="$build/bin/make_synthetic_model"
for exe in "$amlq" "$maker"; do
  [[ -x $exe ]] || { echo "error: $exe not built (cmake --build $build --target amlq make_synthetic_model)" >&2; exit 2; }
done
for tool in mpirun h5diff python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found on PATH" >&2; exit 2; }
done

layers=${LAYERS:-2} samples=${SAMPLES:-8} seqlen=${SEQLEN:-256} threads=${THREADS:-2}
runs=${RUNS:-"np1 np2"}
out=${OUT:-$repo/out/bench-70b-slice}
mkdir -p "$out"
model="$out/llama2-70b-L${layers}"
ids="$out/calib-v32000.u32"
# Shards of 2 GB, so that even two layers (4.5 GB) exercise the sharded index.
if [[ ! -f $model/model.safetensors.index.json || ! -f $ids ]]; then
  rm -rf "$model"
  "$maker" --preset llama2-70b --layers "$layers" --shard-size 2GB --out "$model" \
    --calib-ids "$ids" --calib-tokens 65536 ${MAKER_ARGS:-} >&2
fi
cat >"$out/recipes.toml" <<'TOML'
name = "slice"
ranks = [0]
bits = [4]
groups = [128]
act_order = true
TOML

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# Keep the FP perplexity out of the shared cache so each run pays for it the same way.
export AMLQ_CACHE_DIR="$out/cache"

for name in $runs; do
  case $name in
    np1) np=1 t=$threads ;;
    np2) np=2 t=$threads ;;
    *) echo "error: unknown run '$name' (np1, np2)" >&2; exit 2 ;;
  esac
  rm -rf "$out/$name.h5" "$out/$name.h5.work" "$out/$name.json" "$out/$name.log" "$out/$name.hostpeak" \
    "$out/$name.workpeak" "$AMLQ_CACHE_DIR"
  "$amlq" plan "$model" --np "$np" --threads "$t" --recipes "$out/recipes.toml" --calib-samples "$samples" \
    --calib-seqlen "$seqlen" --batch 4 --search minmax --target-bpw 4.25 --json >"$out/$name.plan.json"
  cmd=(mpirun -np "$np" --oversubscribe "$amlq" --threads "$t" quantize "$model" --calib "$ids"
       --calib-samples "$samples" --calib-seqlen "$seqlen" --batch 4 --recipes "$out/recipes.toml"
       --search minmax --target-bpw 4.25 --eval "$ids" --eval-seqlen 512 --eval-max-windows 4
       --out "$out/$name.h5" --report "$out/$name.json")
  echo "+ ${cmd[*]}" >&2
  # Work-dir size is sampled while the run goes (the pipeline deletes per-layer pack
  # files once they are committed), so the table shows the largest it got.
  (peak=0 host=0; while sleep 5; do
     b=$(du -sb "$out/$name.h5.work" 2>/dev/null | cut -f1) || b=0
     (( ${b:-0} > peak )) && peak=$b && echo "$peak" >"$out/$name.workpeak"
     kib=$(ps -C amlq -o rss= 2>/dev/null | awk '{s += $1} END {print s + 0}')
     (( kib > host )) && host=$kib && echo "$host" >"$out/$name.hostpeak"
   done) &
  sampler=$!
  start=$(date +%s)
  if ! "${cmd[@]}" >"$out/$name.log" 2>&1; then
    kill "$sampler" 2>/dev/null || true
    echo "error: $name failed; last lines of $out/$name.log:" >&2
    tail -n 20 "$out/$name.log" >&2
    exit 1
  fi
  kill "$sampler" 2>/dev/null || true
  echo $(( $(date +%s) - start )) >"$out/$name.wall"
done

python3 - "$out" $runs <<'PY'
import json, os, re, sys
out, names = sys.argv[1], sys.argv[2:]
gib = 2**30
print(f"| run | rank | layers | peak RSS GiB | predicted GiB (phase) | ratio | work-dir peak GiB | wall s | stage seconds | waited for turns s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name in names:
    rep = json.load(open(f"{out}/{name}.json"))
    res = rep["resources"]
    wall = open(f"{out}/{name}.wall").read().strip()
    try:
        work_peak = int(open(f"{out}/{name}.workpeak").read()) / gib
    except (OSError, ValueError):
        work_peak = 0.0
    stages = ", ".join(f"{k} {v:.0f}" for k, v in rep.get("seconds", {}).items() if k != "total")
    for r in res["ranks"]:
        peak, pred = r["peak_rss_bytes"], r["predicted_peak_rss_bytes"]
        print(f"| {name} | {r['rank']} | {r['layers']} | {peak / gib:.2f} | {pred / gib:.2f} ({r['predicted_peak_phase']}) "
              f"| {peak / pred:.2f} | {work_peak:.2f} | {wall} | {stages} | {r.get('turn_waited_seconds', 0):.0f} |")
# The host: the sampled sum of the ranks' RSS (every 5 s) next to the plan's per-host peak.
print()
print("| run | memory turns | host peak sampled GiB | plan's host peak GiB | ratio |")
print("|---|---|---|---|---|")
for name in names:
    rep = json.load(open(f"{out}/{name}.json"))
    plan = json.load(open(f"{out}/{name}.plan.json"))
    planned = max(plan["job"]["node_host_bytes"]) / gib
    try:
        sampled = int(open(f"{out}/{name}.hostpeak").read()) * 1024 / gib
    except (OSError, ValueError):
        sampled = 0.0
    print(f"| {name} | {'on' if rep['resources'].get('memory_turns') else 'off'} | {sampled:.2f} | {planned:.2f} "
          f"| {sampled / planned:.2f} |")
# Calibration speed per layer, from the log lines of the measure and pack passes.
print()
print("| run | pass | layer | tokens | seconds | tokens/s | GFLOP/s |")
print("|---|---|---|---|---|---|---|")
pat = re.compile(r"layer (\d+): forward \+ statistics of (\d+) tokens in ([\d.]+)s \((\d+) tokens/s, ([\d.]+) GFLOP/s\)")
for name in names:
    seen = {}
    for line in open(f"{out}/{name}.log"):
        m = pat.search(line)
        if m:
            layer = int(m.group(1))
            seen[layer] = seen.get(layer, 0) + 1
            which = "measure" if seen[layer] == 1 else "pack"
            print(f"| {name} | {which} | {layer} | {m.group(2)} | {m.group(3)} | {m.group(4)} | {m.group(5)} |")
PY

if [[ " $runs " == *" np1 "* && " $runs " == *" np2 "* ]]; then
  h5diff "$out/np1.h5" "$out/np2.h5" >/dev/null && echo "np1 and np2 wrote identical files" ||
    { echo "error: np1 and np2 differ" >&2; exit 1; }
fi
