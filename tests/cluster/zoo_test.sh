#!/usr/bin/env bash
# amlq-zoo with a stand-in amlq: 2 models x 2 bpw run (locally, or as a Slurm job array with
# --slurm DIR), a second invocation skips all 4, a changed request reruns exactly that run, and
# the summary lists all 4 with bpw and perplexity.
#   zoo_test.sh SOURCE_DIR WORK_DIR [--slurm SLURM_DIR]
set -euo pipefail
src=$1 work=$2 mode=local slurm_dir=""
[ "${3:-}" = --slurm ] && { mode=slurm; slurm_dir=$4; }
fail() { echo "FAIL: $*" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
export FAKE_AMLQ_CALLS=$work/calls.txt
: >"$FAKE_AMLQ_CALLS"
zoo=$src/configs/zoo/stories.toml
run=("$src/launch/amlq-zoo" run "$zoo" --out "$work/out" --amlq "$src/tests/cluster/fake-amlq")
if [ $mode = slurm ]; then
  export SLURM_CONF=$slurm_dir/etc/slurm.conf
  "$src/cluster/local-slurm.sh" status --dir "$slurm_dir" || fail "the local Slurm cluster is not running"
  run+=(--slurm --wait --sbatch-arg=--ntasks-per-node=1 --sbatch-arg=--gpus-per-node=1
    --sbatch-arg=--cpus-per-task=1 --sbatch-arg=--time=5 --sbatch-arg=--signal=B:USR1@5)
  export AMLQ_SITE_PROFILE=local
fi
calls() { wc -l <"$FAKE_AMLQ_CALLS"; }

timeout 90 "${run[@]}" >"$work/first.md" || fail "first zoo run failed (exit $?)"
[ "$(calls)" -eq 4 ] || fail "first run: expected 4 amlq runs, got $(calls)"

timeout 90 "${run[@]}" >"$work/second.md" 2>"$work/second.err" || fail "second zoo run failed"
[ "$(calls)" -eq 4 ] || fail "second run should skip all 4, but amlq ran $(($(calls) - 4)) more times"
[ "$(grep -c '^amlq-zoo: skip ' "$work/second.err")" -eq 4 ] || fail "second run did not report 4 skips"

# A report for another bpw does not answer the request: only that run repeats.
report=$work/out/stories260K-4bpw-minmax/report.json
sed -i 's/"target_bpw": 4/"target_bpw": 4.5/' "$report"
timeout 90 "${run[@]}" >/dev/null 2>"$work/third.err" || fail "third zoo run failed"
[ "$(calls)" -eq 5 ] || fail "a stale report should rerun exactly one run; amlq ran $(($(calls) - 4)) times"
grep -q "run  stories260K-4bpw-minmax: report is for 4.5 bpw, not 4" "$work/third.err" || fail "no reason given for the rerun"

csv=$work/out/summary.csv md=$work/out/summary.md
[ -s "$csv" ] && [ -s "$md" ] || fail "summary.csv / summary.md missing"
head -n 1 "$csv" | grep -q '^model,search,target_bpw,achieved_bpw,fp_ppl,quantized_ppl,delta_ppl,seconds,status,report$' ||
  fail "summary.csv header: $(head -n 1 "$csv")"
[ "$(tail -n +2 "$csv" | wc -l)" -eq 4 ] || fail "summary.csv should have 4 rows"
for row in "stories260K,minmax,3,2.990,12.500,17.500,+5.000,4.0,ok" "stories260K,minmax,4,3.990,12.500,16.500" \
  "stories260K-minsum,minsum,2.5,2.490,12.500,18.000" "stories260K-minsum,minsum,3.5,3.490,12.500,17.000"; do
  grep -q "^$row" "$csv" || fail "summary.csv lacks the row '$row'"
done
[ "$(grep -c '^| stories260K' "$md")" -eq 4 ] || fail "summary.md should list 4 runs"
grep -q '| stories260K | minmax | 3 | 2.990 | 12.500 | 17.500 |' "$md" || fail "summary.md row for 3 bpw wrong"

# summary alone rewrites the same table; a missing report is listed and makes it fail.
"$src/launch/amlq-zoo" summary "$zoo" --out "$work/out" >/dev/null || fail "summary failed"
rm "$work/out/stories260K-3bpw-minmax/report.json"
if "$src/launch/amlq-zoo" summary "$zoo" --out "$work/out" >/dev/null 2>&1; then fail "summary with a missing report should fail"; fi
grep -q '^stories260K,minmax,3,,,,,,no report' "$work/out/summary.csv" || fail "missing report not listed"
echo "zoo ($mode): 4 runs, 4 skipped on the second invocation, 1 rerun after a change; summary OK"
