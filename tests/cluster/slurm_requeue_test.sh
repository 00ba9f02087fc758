#!/usr/bin/env bash
# Requeue + resume on a real (local) Slurm: a job from cluster/amlq-1node.sbatch gets the
# time-limit warning signal (as --signal=B:USR1@S would send it), requeues itself, and its second
# run calls `amlq quantize ... --resume`. The stand-in amlq blocks until it is resumed.
#   slurm_requeue_test.sh SOURCE_DIR SLURM_DIR WORK_DIR
set -euo pipefail
src=$1 slurm_dir=$2 work=$3
fail() { echo "FAIL: $*" >&2; [ -s "${out:-/nonexistent}" ] && { echo "--- job output" >&2; cat "$out" >&2; }; [ -n "${job:-}" ] && scancel "$job" 2>/dev/null; exit 1; }

export SLURM_CONF=$slurm_dir/etc/slurm.conf
"$src/cluster/local-slurm.sh" status --dir "$slurm_dir" || fail "the local Slurm cluster is not running (see cluster_slurm_up)"
rm -rf "$work"
mkdir -p "$work"
out=$work/job.out
cat >"$work/amlq" <<'FAKE'
#!/usr/bin/env bash
echo "stand-in amlq: $*"
case " $* " in *" --resume "*) echo "stand-in amlq: resumed"; exit 0 ;; esac
touch "$(dirname "$0")/started"
exec sleep 100
FAKE
chmod +x "$work/amlq"

job=$(AMLQ_BIN=$work/amlq AMLQ_SITE_PROFILE=local AMLQ_ROOT=$src \
  sbatch --parsable --chdir="$work" --output="$out" --job-name=amlq-requeue \
  --nodes=1 --ntasks-per-node=1 --gpus-per-node=1 --cpus-per-task=1 --time=5 --signal=B:USR1@5 \
  "$src/cluster/amlq-1node.sbatch" quantize model --calib data --target-bpw 3 --out m.h5 --report r.json)
job=${job%%;*}
wait_for() {  # wait_for SECONDS TEST...
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.25; done
}
wait_for 60 test -e "$work/started" || fail "job $job did not start amlq within 60s"
# The warning Slurm sends before the time limit, to the batch shell only.
scancel --batch --signal=USR1 "$job"
restarted() { [ "$(scontrol show job "$job" | grep -o 'Restarts=[0-9]*')" = Restarts=1 ]; }
wait_for 30 restarted || fail "job $job was not requeued after the warning signal"
# Slurm holds a requeued job back ~2 minutes (Reason=BeginTime) once it is pending again; let it go.
finished() {
  local state
  state=$(squeue -h -j "$job" -o '%T %r' 2>/dev/null)
  [ "$state" = "PENDING BeginTime" ] && scontrol update jobid="$job" StartTime=now >/dev/null 2>&1
  [ -z "$state" ]
}
wait_for 60 finished || fail "requeued job $job did not finish within 60s ($(squeue -h -j "$job" -o '%T %r'))"
info=$(scontrol show job "$job")
grep -q 'JobState=COMPLETED' <<<"$info" && grep -q ' ExitCode=0:0' <<<"$info" ||
  fail "job $job: $(grep -o 'JobState=[A-Z_]*' <<<"$info") $(grep -o ' ExitCode=[0-9:]*' <<<"$info")"
grep -q 'time limit near: requeueing job' "$out" || fail "the job script did not requeue on the warning"
grep -q "restart 1 on" "$out" || fail "no second run (restart 1) in the output"
grep -q 'stand-in amlq: .*quantize model .* --resume$' "$out" || fail "the second run did not pass --resume"
echo "slurm job $job: warning signal -> requeued -> resumed with --resume -> COMPLETED 0:0"
