#!/usr/bin/env bash
# amlq-zoo with the real amlq on stories260K: 2 models x 2 bpw (locally, or as a
# Slurm job array with --slurm DIR), the second invocation skips all 4, and the
# summary lists all 4 with achieved bpw and both perplexities.
#   zoo_real_test.sh SOURCE_DIR AMLQ_BIN SHARED_DIR WORK_DIR [--slurm SLURM_DIR]
set -euo pipefail
src=$1 amlq=$2 shared=$3 work=$4 mode=local slurm_dir=""
[ "${5:-}" = --slurm ] && { mode=slurm; slurm_dir=$6; }
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$work" && mkdir -p "$work"
zoo=$work/zoo.toml
cat >"$zoo" <<TOML
[zoo]
name = "stories-test"
calib = "$shared/data/wikitext2/valid.tok512.u16"
eval = "$shared/data/wikitext2/test.tok512.u16"
search = "minmax"
recipes = "fast"
extra_args = ["--calib-samples", "16", "--calib-seqlen", "128", "--eval-max-windows", "8", "--threads", "1"]

[[model]]
name = "stories260K"
path = "$shared/models/stories260K"
bpw = [3.0, 4.0]

[[model]]
name = "stories260K-minsum"
path = "$shared/models/stories260K"
search = "minsum"
bpw = [2.5, 3.5]
TOML
run=("$src/launch/amlq-zoo" run "$zoo" --out "$work/out" --amlq "$amlq")
if [ $mode = slurm ]; then
  export SLURM_CONF=$slurm_dir/etc/slurm.conf AMLQ_SITE_PROFILE=local
  "$src/cluster/local-slurm.sh" status --dir "$slurm_dir" || fail "the local Slurm cluster is not running"
  run+=(--slurm --wait --sbatch-arg=--ntasks-per-node=1 --sbatch-arg=--gpus-per-node=1
    --sbatch-arg=--cpus-per-task=1 --sbatch-arg=--time=5 --sbatch-arg=--signal=B:USR1@5)
fi
timeout 200 "${run[@]}" >"$work/first.md" 2>"$work/first.err" || { cat "$work/first.err" >&2; fail "first zoo run failed"; }
reports=$(find "$work/out" -name report.json | wc -l)
[ "$reports" -eq 4 ] || fail "expected 4 reports, found $reports"
timeout 100 "${run[@]}" >"$work/second.md" 2>"$work/second.err" || fail "second zoo run failed"
[ "$(grep -c '^amlq-zoo: skip ' "$work/second.err")" -eq 4 ] || { cat "$work/second.err" >&2; fail "second run did not skip all 4"; }
csv=$work/out/summary.csv
[ "$(tail -n +2 "$csv" | grep -c ',ok,')" -eq 4 ] || { cat "$csv" >&2; fail "summary.csv should list 4 ok runs"; }
python3 - "$csv" <<'PY' || fail "summary values out of range"
import csv, sys
for row in csv.DictReader(open(sys.argv[1])):
    t, a = float(row["target_bpw"]), float(row["achieved_bpw"])
    assert a <= t + 1e-6, row
    assert float(row["quantized_ppl"]) > float(row["fp_ppl"]) > 1, row
PY
echo "zoo ($mode, real amlq): 4 runs, 4 skipped on the second invocation, summary OK"
