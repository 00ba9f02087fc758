#!/usr/bin/env bash
# End to end on a real (local, one-node) Slurm: submit cluster/amlq-1node.sbatch as a 2-rank job
# with 2 GPUs that runs amlq through amlq-launch (srun --mpi=pmix), wait with a bound, and check
# the job's state, exit code, each rank's line and amlq's output.
#   slurm_job_test.sh SOURCE_DIR AMLQ_BIN SHARED_DIR SLURM_DIR WORK_DIR
# AMLQ_E2E_ARGS (amlq arguments, shell-quoted) and AMLQ_E2E_EXPECT (a regex amlq's output must
# match) switch the job to another command, e.g. a quantize run.
set -euo pipefail
src=$1 amlq=$2 shared=$3 slurm_dir=$4 work=$5
fail() { echo "FAIL: $*" >&2; [ -s "${out:-/nonexistent}" ] && { echo "--- job output" >&2; cat "$out" >&2; }; exit 1; }

export SLURM_CONF=$slurm_dir/etc/slurm.conf
"$src/cluster/local-slurm.sh" status --dir "$slurm_dir" || fail "the local Slurm cluster is not running (see cluster_slurm_up)"
rm -rf "$work"
mkdir -p "$work"
out=$work/job.out
args=${AMLQ_E2E_ARGS:-inspect $(printf '%q' "$shared/models/stories260K")}
expect=${AMLQ_E2E_EXPECT:-^quantizable +226,560 in 35 linears}

start=$SECONDS
set +e
AMLQ_ARGS=$args AMLQ_BIN=$amlq AMLQ_SITE_PROFILE=local AMLQ_ROOT=$src timeout 100 \
  sbatch --parsable --wait --chdir="$work" --output="$out" --job-name=amlq-e2e \
  --nodes=1 --ntasks-per-node=2 --gpus-per-node=2 --cpus-per-task=1 --time=5 --signal=B:USR1@5 \
  "$src/cluster/amlq-1node.sbatch" >"$work/jobid"
status=$?
set -e
job=$(cut -d';' -f1 "$work/jobid")
if [ "$status" -eq 124 ]; then
  state=$(squeue -h -j "$job" -o '%T %r' 2>/dev/null || true)
  scancel "$job" 2>/dev/null || true
  fail "job $job did not finish within 100s (state: ${state:-unknown})"
fi
[ -n "$job" ] || fail "sbatch did not submit (status $status)"
info=$(scontrol show job "$job")
state=$(grep -o 'JobState=[A-Z_]*' <<<"$info" | cut -d= -f2)
code=$(grep -o ' ExitCode=[0-9:]*' <<<"$info" | cut -d= -f2)
[ "$state" = COMPLETED ] && [ "$code" = 0:0 ] && [ "$status" -eq 0 ] ||
  fail "job $job ended $state with exit code $code (sbatch --wait: $status)"
for r in 0 1; do
  grep -Eq "^amlq-launch: rank $r of 2 \(local $r of 2\) on .* via srun, pmix_rank=$r slurm_procid=$r .*CUDA_VISIBLE_DEVICES=$r " "$out" ||
    fail "no line from rank $r of 2 (srun + PMIx, GPU $r) in the job output"
done
grep -Eq "$expect" "$out" || fail "amlq output does not match /$expect/"
grep -q '^amlq-job: amlq exited with status 0$' "$out" || fail "the job script did not report amlq's status"
echo "slurm job $job: COMPLETED 0:0, 2 ranks via srun --mpi=pmix, $((SECONDS - start))s"
