#!/usr/bin/env bash
# Regenerates the fuzz seeds: tests/fuzz/corpus/<target>/seed-* (make_seeds.py)
# and tests/fuzz/data/, the real amlq files the HDF5 targets start from, made by
# quantizing two tiny synthetic models (llama with fp16 low-rank factors, qwen2
# with biases and int8 factors) with the given amlq binary. Regression inputs
# (corpus/<target>/regress-*) are kept.
#   tests/fuzz/make_seeds.sh [AMLQ_BINARY]     (default build/bin/amlq)
set -euo pipefail
cd "$(dirname "$0")/../.."
amlq=$(realpath "${1:-build/bin/amlq}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

find tests/fuzz/corpus -name 'seed-*' -delete 2>/dev/null || true
python3 tests/fuzz/make_seeds.py tests/fuzz/corpus "$tmp"

cat > "$tmp/recipes.toml" <<'TOML'
name = "fuzz"
ranks = [0, 2]
bits = [2, 3, 4]
groups = [8]
mixes = ["50%4b-g8+50%3b-g8"]
TOML
quantize() {  # model spec factor-format
  "$amlq" --log-level warn --threads 1 quantize "$tmp/$1" --calib "$tmp/$1/calib.u16" --calib-samples 8 \
    --calib-seqlen 32 --target-bpw 10 --recipes "$tmp/recipes.toml" --search "uniform:$2" --factor-format "$3" \
    --out "$tmp/$1.h5" --work-dir "$tmp/$1.work" >/dev/null
}
quantize llama 50%4b-g8+50%3b-g8-r2 fp16
quantize qwen2 3b-g8-r2 int8
# A calibration statistics file: `amlq calibrate` keeps them in the work dir.
"$amlq" --log-level warn --threads 1 calibrate "$tmp/llama" --calib "$tmp/llama/calib.u16" --calib-samples 8 \
  --calib-seqlen 32 --work-dir "$tmp/llama.calib" >/dev/null

mkdir -p tests/fuzz/data
cp "$tmp/llama.h5" tests/fuzz/data/model.h5
cp "$tmp/qwen2.h5" tests/fuzz/data/model_int8.h5
cp "$tmp/llama.calib/calib/layer_00000.h5" tests/fuzz/data/calib_layer_00000.h5
cp "$tmp/llama/config.json" tests/fuzz/data/config.json
du -sh tests/fuzz/corpus tests/fuzz/data
