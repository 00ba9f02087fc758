#!/usr/bin/env bash
# amlq-launch: the command it builds for each launcher (--dry-run), argument checks, and a real
# 2-rank mpirun run of amlq where each rank gets its own GPU slot by node-local rank.
#   launch_test.sh SOURCE_DIR AMLQ_BIN SHARED_DIR
set -euo pipefail
src=$1 amlq=$2 shared=$3
launch=$src/launch/amlq-launch
fail() { echo "FAIL: $*" >&2; exit 1; }
# Start from outside any allocation, whatever the caller's environment.
for v in $(env | grep -oE '^(SLURM|OMPI_COMM_WORLD|PMIX)_[A-Z_]*'); do unset "$v"; done
unset AMLQ_LAUNCHER AMLQ_BIN AMLQ_GPUS_PER_NODE AMLQ_LAUNCH_VERBOSE AMLQ_LAUNCHER_ARGS CUDA_VISIBLE_DEVICES
model=$shared/models/stories260K

got=$("$launch" --amlq "$amlq" -n 2 --dry-run --log-level debug inspect "a b")
want="CUDA_DEVICE_ORDER=PCI_BUS_ID NCCL_DEBUG=WARN mpirun -np 2 --bind-to none -x CUDA_DEVICE_ORDER -x NCCL_DEBUG $src/launch/amlq-rank $amlq --log-level debug inspect a\\ b"
[ "$got" = "$want" ] || fail "mpirun dry run:
  got  $got
  want $want"

got=$(SLURM_JOB_ID=7 "$launch" --amlq "$amlq" --ranks 4 --ranks-per-node 2 --dry-run inspect m)
case $got in
  *" srun --mpi=pmix --kill-on-bad-exit=1 --ntasks 4 --ntasks-per-node 2 $src/launch/amlq-rank $amlq inspect m") ;;
  *) fail "inside an allocation amlq-launch should use srun: $got" ;;
esac
got=$(SLURM_JOB_ID=7 SLURM_STEP_ID=0 "$launch" --amlq "$amlq" --dry-run inspect m)
case $got in *" $src/launch/amlq-rank $amlq inspect m") [[ $got != *srun* ]] || fail "inside a step: $got" ;;
  *) fail "inside a job step amlq-launch should start amlq directly: $got" ;; esac
got=$(AMLQ_LAUNCHER=mpirun "$launch" --amlq "$amlq" -n 3 --hostfile hosts --ranks-per-node 1 --oversubscribe --dry-run x)
[[ $got == *"mpirun -np 3 --bind-to none --map-by ppr:1:node --hostfile hosts --oversubscribe "* ]] || fail "mpirun options: $got"

check_usage() {  # check_usage MESSAGE-REGEX ARGS...
  local re=$1 err status=0; shift
  err=$("$launch" "$@" 2>&1 >/dev/null) || status=$?
  [ "$status" -eq 2 ] || fail "'amlq-launch $*' should exit 2, got $status"
  [[ $err =~ $re ]] || fail "'amlq-launch $*' message: $err"
}
check_usage "--ranks must be a whole number, got 'x'" --amlq "$amlq" --ranks x inspect m
check_usage "no amlq arguments given" --amlq "$amlq" -n 2
check_usage "/nonexistent/amlq: not an executable file" --amlq /nonexistent/amlq inspect m
check_usage "unknown launcher 'pbs'" --amlq "$amlq" --launcher pbs inspect m

# For real: 2 ranks under mpirun, GPUs spread by node-local rank.
out=$("$launch" --amlq "$amlq" -n 2 --oversubscribe --gpus-per-node 2 -v inspect "$model" 2>&1) || fail "2-rank run failed: $out"
for r in 0 1; do
  grep -Eq "^amlq-launch: rank $r of 2 \(local $r of 2\) on .* via mpirun, .*ompi_rank=$r, CUDA_VISIBLE_DEVICES=$r threads=" <<<"$out" ||
    fail "no line from rank $r with GPU $r: $out"
done
[ "$(grep -c '^quantizable  226,560 in 35 linears' <<<"$out")" -ge 1 ] || fail "amlq inspect output missing: $out"
# amlq's exit status comes back through the launcher.
status=0
"$launch" --amlq "$amlq" -n 2 --oversubscribe inspect /nonexistent/model >/dev/null 2>&1 || status=$?
[ "$status" -ne 0 ] || fail "a failing amlq should make amlq-launch fail"
echo "amlq-launch: dry runs, usage errors and a 2-rank mpirun run OK"
