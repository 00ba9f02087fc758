// gtest main for every amlq test binary: MPI is initialized once per process so
// that tests may use Communicator::world() (a singleton rank unless under mpirun).
#include <gtest/gtest.h>

#include "core/log.h"
#include "core/mpi_comm.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  amlq::MpiSession mpi(&argc, &argv);
  const auto world = amlq::Communicator::world();
  amlq::log::init(world.rank(), world.size(), amlq::log::Level::Warn);
  return RUN_ALL_TESTS();
}
