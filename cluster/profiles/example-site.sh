# shellcheck shell=bash
# Site profile template: copy to cluster/profiles/<site>.sh, adapt, and submit with
# AMLQ_SITE_PROFILE=<site>. Sourced by cluster/amlq-job.sh on the first node before launching.
# Keep it to what the site needs; every variable here is described in docs/CLUSTER.md.

# The toolchain amlq was built with (same modules at build and at run time).
if command -v module >/dev/null 2>&1; then
  module purge
  module load gcc/12 openmpi/4.1 cuda/12 hdf5/1.12-openmpi
fi

# Network: the interface NCCL bootstraps on and the InfiniBand adapters it may use.
# export NCCL_SOCKET_IFNAME=ib0          # or ^lo,docker0 to exclude
# export NCCL_IB_HCA=mlx5_0,mlx5_1
# export UCX_NET_DEVICES=mlx5_0:1         # Open MPI over UCX: the same adapter
# export OMPI_MCA_pml=ucx                 # if the site's Open MPI wants UCX explicitly

# Checkpoints and HDF5 output on the parallel file system, not node-local /tmp.
# export TMPDIR=/scratch/$USER/tmp
