#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (labels: unit, mpi, model, gpu, slow).
# Extra arguments go to ctest, e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build_dir=${AMLQ_BUILD_DIR:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cd "$build_dir"
ctest --output-on-failure -j "${AMLQ_TEST_JOBS:-2}" "$@"
