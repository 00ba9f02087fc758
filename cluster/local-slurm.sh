#!/usr/bin/env bash
# A real one-node Slurm (munge + slurmctld + slurmd) on this machine, for tests and trying the
# sbatch templates. Starts the daemons directly (no systemd), no cgroups (proctrack/linuxproc,
# task/none), all state under one directory. Installs the Debian packages if they are missing.
#
#   cluster/local-slurm.sh up     [--dir DIR]   install if needed, configure, start, wait until the node is idle
#   cluster/local-slurm.sh down   [--dir DIR]   stop the daemons this script started (by their pid files)
#   cluster/local-slurm.sh status [--dir DIR]   exit 0 when the cluster answers and the node is usable
#   cluster/local-slurm.sh env    [--dir DIR]   print `export SLURM_CONF=...` for eval
#
# DIR defaults to $AMLQ_SLURM_DIR or /tmp/amlq-slurm. `up` is idempotent: when the daemons from DIR
# are running it only checks them. Ports: $AMLQ_SLURM_CTLD_PORT and $AMLQ_SLURM_NODE_PORT, by default
# derived from DIR (so clusters in different DIRs, e.g. two build trees' tests, do not collide).
# The node advertises $AMLQ_SLURM_CPUS CPUs (default: max(nproc, 4)) and $AMLQ_SLURM_GPUS count-only
# GPUs (default 2, no device files) so GPU templates can be submitted on a machine without GPUs.
# Any failure prints one line naming the reason (plus the daemon log tail) and exits non-zero.
set -euo pipefail

die() {
  echo "local-slurm: $*" >&2
  exit 1
}

action=${1:-}
shift || true
dir=${AMLQ_SLURM_DIR:-/tmp/amlq-slurm}
while (($#)); do
  case $1 in
    --dir) dir=${2:?--dir needs a value}; shift 2 ;;
    --dir=*) dir=${1#--dir=}; shift ;;
    *) die "unknown argument '$1' (usage: local-slurm.sh up|down|status|env [--dir DIR])" ;;
  esac
done
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac

port_base=$((20000 + ($(printf '%s' "$dir" | cksum | cut -d' ' -f1) % 5000) * 2))
ctld_port=${AMLQ_SLURM_CTLD_PORT:-$port_base}
node_port=${AMLQ_SLURM_NODE_PORT:-$((port_base + 1))}
ncpu=$(nproc)
cpus=${AMLQ_SLURM_CPUS:-$((ncpu > 4 ? ncpu : 4))}
gpus=${AMLQ_SLURM_GPUS:-2}
host=$(hostname -s)
conf=$dir/etc/slurm.conf
munge_socket=$dir/munge/munge.socket
wait_s=${AMLQ_SLURM_WAIT:-30}
packages=(munge slurmctld slurmd slurm-client)

export SLURM_CONF=$conf

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

log_tail() {
  local f
  for f in "$dir"/log/munged.log "$dir"/log/slurmctld.log "$dir"/log/slurmd.log; do
    [ -s "$f" ] && { echo "--- tail of $f" >&2; tail -n 8 "$f" >&2; }
  done
  return 0
}

fail() {
  echo "local-slurm: $*" >&2
  log_tail
  # A half-started cluster is not left behind.
  [ "$action" = up ] && stop >/dev/null 2>&1
  exit 1
}

last_error() {  # last_error LOG: the daemon's last fatal/error line, for the one-line message
  local line
  line=$(grep -hE 'fatal:|error:' "$1" 2>/dev/null | tail -n 1 | sed 's/^\[[^]]*\] //')
  [ -n "$line" ] && echo ": $line"
  return 0
}

install_packages() {
  local missing=() p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  local sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "local-slurm: installing ${missing[*]}" >&2
  $sudo_cmd apt-get update -qq >/dev/null || fail "apt-get update failed; cannot install ${missing[*]}"
  # policy-rc.d 101: the packages' init scripts must not start system-wide daemons.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e $policy ] && [ -z "$sudo_cmd" ]; then
    printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >"$dir/log/apt.log" 2>&1 || { ((made_policy)) && rm -f $policy; fail "apt-get install ${missing[*]} failed (see $dir/log/apt.log)"; }
  ((made_policy)) && rm -f $policy
  return 0
}

write_config() {
  mkdir -p "$dir"/{etc,munge,state,spool,run,log,dev}
  chmod 755 "$dir/munge"
  if [ ! -s "$dir/munge/munge.key" ]; then
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
  fi
  local mpi_default=none
  [ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/mpi_pmix.so ] && mpi_default=pmix
  local node_gres=""
  ((gpus > 0)) && node_gres="Gres=gpu:$gpus"
  local new=$dir/etc/slurm.conf.new
  cat >"$new" <<EOF
# Written by cluster/local-slurm.sh: a one-node test cluster, all state under $dir
ClusterName=amlqlocal
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$node_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: works inside containers and gVisor.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MpiDefault=$mpi_default
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=4096 $node_gres State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  # Stand-in GPUs: Slurm wants one character device per GPU; links to /dev/null give it that, so the
  # bookkeeping (and CUDA_VISIBLE_DEVICES) is real while no device exists.
  local gres_line="" g
  if ((gpus > 0)); then
    for ((g = 0; g < gpus; g++)); do ln -sfn /dev/null "$dir/dev/gpu$g"; done
    gres_line="NodeName=$host Name=gpu File=$dir/dev/gpu[0-$((gpus - 1))]"
  fi
  printf 'AutoDetect=off\n%s\n' "$gres_line" >"$dir/etc/gres.conf"
  mv -f "$new" "$conf"
}

node_state() { sinfo -h -N -o '%t' 2>/dev/null | head -n 1; }

wait_until_idle() {
  local start_s=$SECONDS deadline=$((SECONDS + wait_s)) state=""
  while ((SECONDS < deadline)); do
    # The daemons write their pid files a moment after forking.
    if ((SECONDS > start_s + 5)); then
      pid_alive "$dir/run/slurmctld.pid" || fail "slurmctld exited during start-up$(last_error "$dir/log/slurmctld.log")"
      pid_alive "$dir/run/slurmd.pid" || fail "slurmd exited during start-up$(last_error "$dir/log/slurmd.log")"
    fi
    state=$(node_state || true)
    case $state in
      idle | mix | alloc) return 0 ;;
      down* | drain* | fail*)
        # A node that was down in a previous run comes back once slurmd has registered.
        scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  fail "node '$host' not usable after ${wait_s}s (state '${state:-no answer from slurmctld}')$(last_error "$dir/log/slurmd.log")"
}

start() {
  mkdir -p "$dir/log"
  install_packages
  command -v munged >/dev/null || fail "munged not found after installing munge"
  command -v slurmctld >/dev/null || fail "slurmctld not found after installing slurmctld"
  write_config

  if ! pid_alive "$dir/run/munged.pid"; then
    rm -f "$munge_socket" "$munge_socket.lock"
    munged --key-file="$dir/munge/munge.key" --socket="$munge_socket" --pid-file="$dir/run/munged.pid" \
      --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munge.seed" --force ||
      fail "munged did not start"
  fi
  for _ in $(seq 50); do [ -S "$munge_socket" ] && break; sleep 0.1; done
  munge -S "$munge_socket" -n </dev/null | unmunge -S "$munge_socket" >/dev/null 2>&1 ||
    fail "munge cannot encode/decode a credential through $munge_socket"

  if ! pid_alive "$dir/run/slurmctld.pid"; then
    # -i: ignore state from an earlier run that cannot be recovered.
    slurmctld -f "$conf" -i >>"$dir/log/slurmctld.out" 2>&1 || fail "slurmctld did not start"
  fi
  if ! pid_alive "$dir/run/slurmd.pid"; then
    slurmd -f "$conf" >>"$dir/log/slurmd.out" 2>&1 || fail "slurmd did not start"
  fi
  wait_until_idle
  echo "local-slurm: up ($dir, node $host, ${cpus} CPUs, ${gpus} GPUs); export SLURM_CONF=$conf"
}

stop_pidfile() {
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$f"
}

stop() {
  if [ -f "$conf" ] && pid_alive "$dir/run/slurmctld.pid"; then
    # Jobs left behind by a test are cancelled so their processes do not outlive the cluster.
    scancel --full --quiet --user=root >/dev/null 2>&1 || true
  fi
  stop_pidfile "$dir/run/slurmd.pid"
  stop_pidfile "$dir/run/slurmctld.pid"
  stop_pidfile "$dir/run/munged.pid"
  echo "local-slurm: down ($dir)"
}

status() {
  [ -f "$conf" ] || die "no cluster configured in $dir"
  for d in munged slurmctld slurmd; do pid_alive "$dir/run/$d.pid" || die "$d is not running ($dir)"; done
  local state
  state=$(node_state || true)
  case $state in
    idle | mix | alloc) echo "local-slurm: running ($dir, node $host $state)" ;;
    *) die "node '$host' state '${state:-no answer}'" ;;
  esac
}

case $action in
  up) start ;;
  down) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$conf" ;;
  *) die "usage: local-slurm.sh up|down|status|env [--dir DIR]" ;;
esac
