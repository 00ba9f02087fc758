#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang with ASan + UBSan) in build-fuzz/
# and runs each one for SECONDS (default 60), one after the other at low priority,
# then prints a table: target, executions, coverage (edges, features), corpus,
# crashes. Seeds and regression inputs come from tests/fuzz/corpus/<target>/
# (read only); what a run discovers goes to build-fuzz/fuzz-work/corpus/<target>/
# and every crash, leak, timeout or sanitizer report to
# build-fuzz/fuzz-work/artifacts/<target>/ with its log.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Exit status 1 when any target crashed. Environment: AMLQ_FUZZ_BUILD_DIR,
# AMLQ_JOBS, AMLQ_FUZZ_JOBS (targets run in parallel, default 1), AMLQ_FUZZ_SEED
# (libFuzzer's -seed; scripts/test.sh fixes it so that CI's short pass repeats the
# same mutations on every run instead of failing at random on a new finding).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
if [[ ${1:-} =~ ^[0-9]+$ ]]; then seconds=$1; shift; fi
build=${AMLQ_FUZZ_BUILD_DIR:-build-fuzz}
work=$build/fuzz-work
jobs=${AMLQ_JOBS:-$(nproc)}

scripts/setup.sh --deps-only
if [ ! -f "$build/build.ninja" ]; then
  # -O1: libFuzzer's recommendation, and it keeps the instrumented build short.
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -G Ninja -DAMLQ_FUZZ=ON -DAMLQ_CUDA=OFF -DAMLQ_BUILD_BENCH=OFF \
    -DAMLQ_NATIVE=OFF -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O1 -DCMAKE_C_FLAGS_DEBUG=-O1 >/dev/null
fi
build_start=$SECONDS
cmake --build "$build" -j "$jobs" --target fuzz_all | grep -vE '^\[[0-9]+/[0-9]+\] (Building|Linking)' || true
echo "fuzz: build took $((SECONDS - build_start)) s"

targets=()
if (($#)); then
  targets=("$@")
else
  mapfile -t targets < "$build/fuzz-targets.txt"
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)
[ -n "$symbolizer" ] && export ASAN_SYMBOLIZER_PATH=$symbolizer

run_target() {
  local t=$1
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
  rm -f "$work/artifacts/$t"/*
  # max_len: the largest seed (the HDF5 files) or libFuzzer's default 4096.
  local max_len
  max_len=$(find -L "tests/fuzz/corpus/$t" -type f -printf '%s\n' | sort -n | tail -1)
  max_len=$((max_len > 4096 ? max_len + max_len / 8 : 4096))
  nice -n 10 "$build/bin/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 -max_len="$max_len" \
    ${AMLQ_FUZZ_SEED:+-seed=$AMLQ_FUZZ_SEED} -print_final_stats=1 -artifact_prefix="$work/artifacts/$t/" "$work/corpus/$t" "tests/fuzz/corpus/$t" \
    > "$work/artifacts/$t.log" 2>&1 || true
}

fuzz_jobs=${AMLQ_FUZZ_JOBS:-1}
for t in "${targets[@]}"; do
  [ -x "$build/bin/fuzz_$t" ] || { echo "fuzz: no target $t" >&2; exit 2; }
  echo "fuzz: $t for ${seconds}s"
  run_target "$t" &
  while (($(jobs -rp | wc -l) >= fuzz_jobs)); do wait -n || true; done
done
wait

crashed=0
printf '%-28s %12s %10s %9s %8s %8s  %s\n' target executions exec/s edges features corpus crashes
for t in "${targets[@]}"; do
  log=$work/artifacts/$t.log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\)\t.*/\1/p' "$log" | tail -1)  # stopped by a crash
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov_line=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  edges=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$cov_line")
  features=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$cov_line")
  corpus=$(find "$work/corpus/$t" -type f | wc -l)
  crashes=$(find "$work/artifacts/$t" -type f | wc -l)
  ((crashes > 0)) && crashed=1
  printf '%-28s %12s %10s %9s %8s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${edges:-?}" "${features:-?}" \
    "$corpus" "$crashes"
  if ((crashes > 0)); then
    find "$work/artifacts/$t" -type f -printf '    %p\n'
    grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|FINDING' "$log" | sed 's/^/    /' || true
    echo "    log: $log"
  fi
done
exit $crashed
