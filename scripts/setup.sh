#!/usr/bin/env bash
# Installs the Debian packages amlq needs (only those missing) and builds it in build/.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#   scripts/setup.sh [--deps-only]     --deps-only: install, do not build
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config
  openmpi-bin libopenmpi-dev
  libhdf5-openmpi-dev hdf5-tools
  libeigen3-dev libcli11-dev libgtest-dev nlohmann-json3-dev libspdlog-dev
  # scripts/fuzz.sh: clang with libFuzzer and the sanitizer runtimes, llvm-symbolizer for readable reports
  clang-14 libclang-rt-14-dev llvm-14
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "${1:-}" = "--deps-only" ] && exit 0

build_dir=${AMLQ_BUILD_DIR:-build}
jobs=${AMLQ_JOBS:-$(nproc)}
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${AMLQ_CMAKE_ARGS:-} >/dev/null
fi
cmake --build "$build_dir" -j "$jobs" | grep -vE '^\[[0-9]+/[0-9]+\] (Building|Linking)' || true
test -x "$build_dir/bin/amlq" || { echo "setup: build failed" >&2; exit 1; }
