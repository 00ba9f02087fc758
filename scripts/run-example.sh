#!/usr/bin/env bash
# Installs what is missing, builds, and runs amlq on the real model in ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
amlq=${AMLQ_BUILD_DIR:-build}/bin/amlq
shared=${AMLQ_SHARED:-../shared}
model=$shared/models/stories260K
[ -d "$model" ] || { echo "run-example: $model not found (set AMLQ_SHARED)" >&2; exit 1; }

"$amlq" inspect "$model"
