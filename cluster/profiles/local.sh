# shellcheck shell=bash
# Site profile for the one-node test cluster (cluster/local-slurm.sh) and for workstations:
# Debian's Open MPI and no modules. Sourced by cluster/amlq-job.sh when AMLQ_SITE_PROFILE=local.
# Open MPI refuses to run as root (containers) without these two.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
