#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (labels: unit, mpi, model, gpu, slow),
# then the short fuzz pass (scripts/fuzz.sh, AMLQ_FUZZ_SECONDS=15 per target; 0 skips it).
#   scripts/test.sh                      everything: what CI runs
#   scripts/test.sh CTEST_ARGS...        ctest only, e.g. scripts/test.sh -L unit
#   scripts/test.sh --sanitize [ARGS...] ASan + UBSan build in build-sanitize/ (gcc, CUDA off), then the
#                                        unit and model tests (mpi, slow and gpu excluded; README, "Testing")
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

if [ "${1:-}" = "--sanitize" ]; then
  shift
  export AMLQ_BUILD_DIR=${AMLQ_SANITIZE_BUILD_DIR:-build-sanitize}
  export AMLQ_CMAKE_ARGS="-DAMLQ_SANITIZE=address,undefined -DAMLQ_CUDA=OFF -DAMLQ_BUILD_BENCH=OFF ${AMLQ_CMAKE_ARGS:-}"
  # Set before the build: CMake's test discovery already runs the sanitized binaries.
  # Leaks inside Open MPI and libhdf5 (allocated at MPI_Init / library init, never freed) are not ours:
  # tests/sanitize/lsan.supp lists them by library; anything leaked from amlq's code still fails.
  # Open MPI unloads its plugins (mca_*.so) at MPI_Finalize, which leaves their allocations with
  # no library to match a suppression against: keep them loaded.
  export OMPI_MCA_mca_base_component_disable_dlclose=1 PMIX_MCA_mca_base_component_disable_dlclose=1
  export LSAN_OPTIONS="suppressions=$PWD/tests/sanitize/lsan.supp:print_suppressions=0"
  # fast_unwind_on_malloc=0: the frame-pointer unwinder stops at the first frame of a library built
  # without frame pointers (Open MPI, libhdf5), so their allocations would show no library to match.
  export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)
  [ -n "$symbolizer" ] && export ASAN_SYMBOLIZER_PATH=$symbolizer
  scripts/setup.sh
  cd "$AMLQ_BUILD_DIR"
  if (($#)); then
    ctest --output-on-failure -j "${AMLQ_TEST_JOBS:-2}" "$@"
  else
    ctest --output-on-failure -j "${AMLQ_TEST_JOBS:-2}" -L 'unit|model' -LE 'mpi|slow|gpu'
  fi
  exit
fi

scripts/setup.sh
build_dir=${AMLQ_BUILD_DIR:-build}
(cd "$build_dir" && ctest --output-on-failure -j "${AMLQ_TEST_JOBS:-2}" "$@")
if ((! $#)) && [ "${AMLQ_FUZZ_SECONDS:-15}" != 0 ]; then
  AMLQ_FUZZ_SEED=${AMLQ_FUZZ_SEED:-1} AMLQ_FUZZ_JOBS=${AMLQ_FUZZ_JOBS:-2} scripts/fuzz.sh "${AMLQ_FUZZ_SECONDS:-15}"
fi
