#!/usr/bin/env bash
# The body of every amlq sbatch template (the templates hold only #SBATCH lines and exec this).
#
# What it runs: amlq-launch with the template's arguments; when there are none, $AMLQ_ARGS (a
# shell-quoted string), or for a job array line SLURM_ARRAY_TASK_ID+1 of $AMLQ_ARGS_FILE (one
# shell-quoted argument list per line, as launch/amlq-zoo writes it). Environment it reads:
#   AMLQ_ROOT             the amlq checkout (the templates default it to the submit directory)
#   AMLQ_BIN              the amlq binary (default $AMLQ_ROOT/build/bin/amlq)
#   AMLQ_SITE_PROFILE     name of cluster/profiles/NAME.sh, or a path: module loads, NCCL/UCX settings
#   AMLQ_RESUME_ARGS      appended to `amlq quantize` when Slurm restarts the job (default --resume)
#   AMLQ_REQUEUE_ON_TIMEOUT  1 (default): on the warning signal before the time limit (--signal=B:USR1@S)
#                         requeue the job so it continues from its checkpoints; 0: let it end
#   AMLQ_LAUNCH_VERBOSE   1 (default here): every rank prints its rank, node and GPU to the log
set -uo pipefail

root=${AMLQ_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
say() { echo "amlq-job: $*" >&2; }

profile=${AMLQ_SITE_PROFILE:-}
if [ -n "$profile" ]; then
  case $profile in */*) ;; *) profile=$root/cluster/profiles/$profile.sh ;; esac
  [ -r "$profile" ] || { say "site profile $profile not found (AMLQ_SITE_PROFILE)"; exit 2; }
  # shellcheck disable=SC1090
  source "$profile" || { say "site profile $profile failed"; exit 2; }
fi

args=("$@")
if ((${#args[@]} == 0)); then
  line=${AMLQ_ARGS:-}
  if [ -z "$line" ] && [ -n "${AMLQ_ARGS_FILE:-}" ]; then
    [ -n "${SLURM_ARRAY_TASK_ID:-}" ] || { say "AMLQ_ARGS_FILE needs a job array (sbatch --array)"; exit 2; }
    [ -r "$AMLQ_ARGS_FILE" ] || { say "$AMLQ_ARGS_FILE: cannot read (AMLQ_ARGS_FILE)"; exit 2; }
    line=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$AMLQ_ARGS_FILE")
    [ -n "$line" ] || { say "$AMLQ_ARGS_FILE: no line for array task $SLURM_ARRAY_TASK_ID"; exit 2; }
  fi
  [ -n "$line" ] || { say "nothing to run: give amlq arguments to the template or set AMLQ_ARGS / AMLQ_ARGS_FILE"; exit 2; }
  eval "args=($line)"
fi

# A requeued job (preempted, node failure, or our own requeue at the time limit) continues from its
# checkpoints: Slurm counts restarts in SLURM_RESTART_COUNT.
restarts=${SLURM_RESTART_COUNT:-0}
if ((restarts > 0)); then
  is_quantize=0 has_resume=0
  for a in "${args[@]}"; do
    [ "$a" = quantize ] && is_quantize=1
    [ "$a" = --resume ] && has_resume=1
  done
  if ((is_quantize && !has_resume)) && [ -n "${AMLQ_RESUME_ARGS---resume}" ]; then
    read -r -a resume <<<"${AMLQ_RESUME_ARGS---resume}"
    args+=("${resume[@]}")
  fi
fi

export AMLQ_BIN=${AMLQ_BIN:-$root/build/bin/amlq}
export AMLQ_LAUNCH_VERBOSE=${AMLQ_LAUNCH_VERBOSE:-1}
say "job ${SLURM_JOB_ID:-none}${SLURM_ARRAY_TASK_ID:+ (array task $SLURM_ARRAY_TASK_ID)} restart $restarts on ${SLURM_JOB_NODELIST:-$(hostname -s)}:" \
  "${SLURM_NNODES:-1} node(s), ${SLURM_NTASKS:-1} task(s), GPUs ${SLURM_GPUS_ON_NODE:-0}/node, ${SLURM_CPUS_PER_TASK:-?} CPUs/task"
say "amlq ${args[*]}"

requeued=0
on_warning() {
  if [ "${AMLQ_REQUEUE_ON_TIMEOUT:-1}" != 0 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    say "time limit near: requeueing job $SLURM_JOB_ID; the next run resumes from the checkpoints"
    requeued=1
    scontrol requeue "$SLURM_JOB_ID" || say "scontrol requeue failed"
  fi
}
trap on_warning USR1

# In the background so the trap runs as soon as the signal arrives, not when amlq ends.
"$root/launch/amlq-launch" "${args[@]}" &
child=$!
status=0
while :; do
  wait "$child"
  status=$?
  # wait returns >128 when a trapped signal interrupted it; the child may still be running.
  if ((status > 128)) && kill -0 "$child" 2>/dev/null; then continue; fi
  break
done
((requeued)) && say "requeued; amlq ended with $status"
say "amlq exited with status $status"
exit "$status"
