#!/usr/bin/env bash
# Distributed-run benchmark (issue 6): wall time of the calibrate and measure
# stages of `amlq quantize` at -np 1, 2, 4 (and 4 as 2 replicas x 2 stages) on a
# synthetic Llama checkpoint, with speed-up and parallel efficiency vs -np 1, and
# a check that every run writes the same HDF5 as -np 1.
#   bench/scaling/run_scaling.sh [BUILD_DIR]      (default: build)
# Sizes can be overridden: LAYERS HIDDEN INTERMEDIATE HEADS KV_HEADS VOCAB SAMPLES SEQLEN.
# The defaults (8 layers, hidden 768) keep the four runs under ~8 minutes on a
# 2-core machine; measure dominates and grows about as hidden^3 per layer.
# Outputs go to out/bench-scaling/ (the model is cached there between runs).
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

layers=${LAYERS:-8} hidden=${HIDDEN:-768} intermediate=${INTERMEDIATE:-2048}
heads=${HEADS:-12} kv_heads=${KV_HEADS:-4} vocab=${VOCAB:-512}
samples=${SAMPLES:-16} seqlen=${SEQLEN:-128}

out="$repo/out/bench-scaling"
mkdir -p "$out"
# F32 as in the recorded results (make_synthetic_model defaults to bf16 shards).
model="$out/llama-L${layers}-h${hidden}-i${intermediate}-a${heads}-kv${kv_heads}-v${vocab}-f32"
ids="$out/calib-v${vocab}.u32"
if [[ ! -f $model/config.json || ! -f $ids ]]; then
  "$maker" --out "$model" --layers "$layers" --hidden "$hidden" --intermediate "$intermediate" \
    --heads "$heads" --kv-heads "$kv_heads" --vocab "$vocab" --dtype f32 --calib-ids "$ids" --calib-tokens 65536 >&2
fi

# mpirun refuses root unless told; oversubscribe so -np 4 runs on a 2-core machine.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# One thread per rank everywhere, so ranks are the only parallelism measured.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# name  np  replicas
runs=("np1 1 1" "np2 2 1" "np4 4 1" "np4r2 4 2")
for run in "${runs[@]}"; do
  read -r name np replicas <<<"$run"
  rm -rf "$out/$name.h5" "$out/$name.h5.work" "$out/$name.json" "$out/$name.log" "$out/$name.time" "$out/$name.load"
  cmd=(mpirun -np "$np" --oversubscribe "$amlq" quantize "$model" --calib "$ids"
       --calib-samples "$samples" --calib-seqlen "$seqlen" --target-bpw 3 --recipes fast --search minmax
       --threads 1 --replicas "$replicas" --out "$out/$name.h5" --report "$out/$name.json")
  echo "+ ${cmd[*]}" >&2
  # Load before the run and CPU seconds of all ranks: on a shared machine they say how much of
  # a slow run was other people's work.
  cut -d' ' -f1 /proc/loadavg >"$out/$name.load"
  TIMEFORMAT='%R %U %S'
  if ! { time "${cmd[@]}" >"$out/$name.log" 2>&1; } 2>"$out/$name.time"; then
    echo "error: $name failed; last lines of $out/$name.log:" >&2
    tail -n 20 "$out/$name.log" >&2
    exit 1
  fi
  echo "  $name done: wall, user, sys seconds $(cat "$out/$name.time")" >&2
done

identical=()
for run in "${runs[@]:1}"; do
  read -r name _ <<<"$run"
  if h5diff -q "$out/np1.h5" "$out/$name.h5" >/dev/null 2>&1; then
    identical+=("$name=identical")
  else
    identical+=("$name=DIFFERS")
  fi
done

python3 - "$out" "$layers" "$hidden" "$intermediate" "$heads" "$kv_heads" "$vocab" "$samples" "$seqlen" \
  "${identical[*]}" "${runs[@]}" <<'PY'
import json, os, platform, sys

out, layers, hidden, inter, heads, kv, vocab, samples, seqlen, identical = sys.argv[1:11]
runs = [r.split() for r in sys.argv[11:]]
same = dict(kv.split("=") for kv in identical.split())

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

rows = []
for name, np_, replicas in runs:
    rep = json.load(open(os.path.join(out, name + ".json")))
    s = rep["seconds"]
    np_, replicas = int(np_), int(replicas)
    wall, user, sys_ = (float(x) for x in open(os.path.join(out, name + ".time")).read().split())
    load = float(open(os.path.join(out, name + ".load")).read())
    rows.append((name, np_, replicas, np_ // replicas, s["calibrate"], s["measure"], wall, user + sys_, load))

cores = os.cpu_count()
print(f"## amlq quantize scaling: calibrate and measure vs MPI ranks\n")
print(f"Model: synthetic Llama, {layers} layers, hidden {hidden}, intermediate {inter}, "
      f"{heads} heads ({kv} kv), vocab {vocab}, F32.  ")
print(f"Run: --calib-samples {samples} --calib-seqlen {seqlen} --target-bpw 3 --recipes fast "
      f"--search minmax --threads 1.  ")
print(f"Machine: {cores} cores (nproc), {cpu_model()}.\n")
print("| ranks | layout (replicas x stages) | calibrate s | measure s | calib+measure s "
      "| speed-up vs np 1 | parallel efficiency | whole run s | CPU s (all ranks) | load before | output vs np 1 |")
print("|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|")
base = rows[0][4] + rows[0][5]
for name, np_, rep, stages, cal, mea, wall, cpu, load in rows:
    tot = cal + mea
    speedup = base / tot
    cal_su = rows[0][4] / cal
    mea_su = rows[0][5] / mea
    note = "(reference)" if name == "np1" else same.get(name, "?")
    print(f"| {np_} | {rep} x {stages} | {cal:.2f} ({cal_su:.2f}x) | {mea:.2f} ({mea_su:.2f}x) | {tot:.2f} "
          f"| {speedup:.2f}x | {speedup / np_:.0%} | {wall:.1f} | {cpu:.1f} | {load:.2f} | {note} |")
print()
print(f"Speed-up = (calibrate + measure at np 1) / (same at np N); per-stage speed-ups in parentheses; "
      f"parallel efficiency = speed-up / ranks; "
      f"stage seconds are rank 0's from the JSON report (each stage ends in a barrier or gather); "
      f"whole run = the mpirun command including start-up, search and pack; CPU s = user + sys of all ranks; "
      f"load before = 1-minute load average when the run started.")
print(f"Note: this machine has {cores} cores, so runs with more than {cores} ranks oversubscribe them "
      f"(ranks time-share cores); speed-up there is bounded by {cores}x and efficiency by {cores}/ranks. "
      f"Other processes sharing the machine add noise.")
PY
