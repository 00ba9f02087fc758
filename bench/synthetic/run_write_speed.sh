#!/usr/bin/env bash
# Write speed of make_synthetic_model vs dd and cp on the same disk (issue 11):
# all three write the same number of bytes into out/bench-write-speed/ and sync
# them to the disk; the table gives GB/s (1 GB = 1e9 bytes) and CPU seconds.
#   bench/synthetic/run_write_speed.sh [BUILD_DIR] [make_synthetic_model options]
# Default model: --preset llama2-70b --layers 2 (8.6 GB of bf16 in 5 GB shards).
# Everything written is deleted at the end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
shift || true
maker="$build/bin/make_synthetic_model"
[[ -x $maker ]] || { echo "error: $maker not built (cmake --build $build --target make_synthetic_model)" >&2; exit 2; }
model_args=("$@")
((${#model_args[@]})) || model_args=(--preset llama2-70b --layers 2)

out="$repo/out/bench-write-speed"
rm -rf "$out"
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
TIMEFORMAT='%R %U %S'
cut -d' ' -f1 /proc/loadavg >"$out/load"

# 1. make_synthetic_model (fdatasyncs every shard before renaming it).
{ time "$maker" --out "$out/model" "${model_args[@]}" >"$out/maker.log" 2>&1; } 2>"$out/maker.time"
bytes=$(cat "$out"/model/*.safetensors | wc -c)

# 2. dd of the same size from /dev/zero, synced.
block=$((8 << 20))
{ time dd if=/dev/zero of="$out/dd.bin" bs=$block count=$(((bytes + block - 1) / block)) conv=fdatasync \
    status=none; } 2>"$out/dd.time"
dd_bytes=$(stat -c %s "$out/dd.bin")
rm -f "$out/dd.bin"

# 3. cp of the written shards (read back + write), synced.
mkdir "$out/copy"
{ time { cp "$out"/model/*.safetensors "$out/copy/" && sync "$out"/copy/*; }; } 2>"$out/cp.time"

python3 - "$out" "$bytes" "$dd_bytes" "${model_args[*]}" <<'PY'
import os, sys
out, model_bytes, dd_bytes, args = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def t(name):
    return tuple(float(x) for x in open(os.path.join(out, name + ".time")).read().split())
print(f"## make_synthetic_model {args}: write speed vs dd and cp\n")
print("| writer | bytes (files) | seconds | GB/s | user CPU s | sys CPU s |")
print("|---|---:|---:|---:|---:|---:|")
for name, label, n in (("maker", "make_synthetic_model (generate bf16 + write + fdatasync)", model_bytes),
                       ("dd", "dd if=/dev/zero bs=8M conv=fdatasync", dd_bytes),
                       ("cp", "cp of the shards + sync", model_bytes)):
    real, user, sys_ = t(name)
    print(f"| {label} | {n:,} | {real:.1f} | {n / 1e9 / real:.3f} | {user:.1f} | {sys_:.1f} |")
real, user, sys_ = t("maker")
load = open(os.path.join(out, "load")).read().strip()
print(f"\nGeneration (user CPU of make_synthetic_model's threads): {model_bytes / 1e9 / user:.2f} GB per CPU-second. "
      f"Load average when the run started: {load} on {os.cpu_count()} cores.")
print("\nmake_synthetic_model output:\n")
for line in open(os.path.join(out, "maker.log")):
    if "%" not in line:
        print("    " + line.rstrip())
PY
