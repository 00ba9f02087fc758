#!/usr/bin/env bash
# Installs what is missing, builds, then quantizes the real model in ../shared
# (stories260K) to 3.0 bits per weight and prints the report: per-layer choices,
# achieved bpw, FP and quantized WikiText-2 perplexity, time per stage.
# Idempotent: a second run recomputes everything into the same out/ folder.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
amlq=${AMLQ_BUILD_DIR:-build}/bin/amlq
shared=${AMLQ_SHARED:-../shared}
model=$shared/models/stories260K
data=$shared/data/wikitext2
[ -d "$model" ] || { echo "run-example: $model not found (set AMLQ_SHARED to the shared folder)" >&2; exit 1; }
mkdir -p out

"$amlq" inspect "$model"
echo
"$amlq" quantize "$model" \
  --calib "$data/valid.tok512.u16" --calib-samples 128 --calib-seqlen 256 \
  --target-bpw 3.0 --search minmax --recipes default \
  --eval "$data/test.tok512.u16" --eval-seqlen 512 \
  --out out/stories260K-3.0bpw.h5 --report out/stories260K-3.0bpw.json
echo
echo "model:   out/stories260K-3.0bpw.h5   (amlq inspect / amlq eval it)"
echo "report:  out/stories260K-3.0bpw.json, allocation picture: out/stories260K-3.0bpw.svg"
