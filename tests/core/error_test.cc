#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/mpi_comm.h"
#include "tests/test_util.h"

#include <fstream>

namespace amlq {
namespace {

TEST(Error, CarriesKindAndExitCode) {
  try {
    AMLQ_FAIL(Input, "{}: bad {}", "file.bin", 42);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_STREQ(e.what(), "file.bin: bad 42");
    EXPECT_EQ(exit_code(e.kind()), 3);
    EXPECT_NE(e.origin().find("error_test.cc"), std::string::npos);
  }
}

// Found by fuzzing: messages quote text from input files (a TOML line, a .npy
// header, a tensor name) and came out on several lines.
TEST(Error, MessagesAreOneBoundedLine) {
  try {
    AMLQ_FAIL(Input, "{}: unsupported escape '{}'", "r.toml:3", "\\\n\r\x1b[2J");
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "r.toml:3: unsupported escape '\\\\n\\r\\x1b[2J'");
  }
  try {
    AMLQ_FAIL(Input, "{}", std::string(100000, 'x'));
  } catch (const Error& e) {
    EXPECT_LT(std::string(e.what()).size(), 2100u);
    EXPECT_NE(std::string(e.what()).find("[... 98000 more bytes]"), std::string::npos);
  }
}

TEST(Error, MpiCheckTurnsCodesIntoDistributedErrors) {
  EXPECT_NO_THROW(AMLQ_CHECK_MPI(MPI_SUCCESS));
  try {
    AMLQ_CHECK_MPI(MPI_ERR_COMM);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Distributed);
    EXPECT_NE(std::string(e.what()).find("MPI_ERR_COMM"), std::string::npos) << e.what();
  }
}

TEST(AtomicOutput, LeavesNothingUnlessCommitted) {
  test::TempDir dir;
  const auto target = dir.file("out.bin");
  {
    AtomicOutput out(target);
    std::ofstream(out.temp_path()) << "partial";
  }
  EXPECT_FALSE(std::filesystem::exists(target));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  {
    AtomicOutput out(target);
    std::ofstream(out.temp_path()) << "done";
    out.commit();
  }
  EXPECT_TRUE(std::filesystem::exists(target));
}

TEST(Hasher, DistinguishesInputs) {
  EXPECT_EQ(Hasher().update("abc").digest(), Hasher().update("abc").digest());
  EXPECT_NE(Hasher().update("abc").digest(), Hasher().update("abd").digest());
  EXPECT_NE(Hasher().update("ab").update("c").digest(), Hasher().update("a").update("bc").digest());
}

TEST(Communicator, SingletonWorldReducesAndBroadcasts) {
  const auto world = Communicator::world();
  std::vector<double> v{1.5, 2.5};
  world.allreduce_sum(v);
  EXPECT_DOUBLE_EQ(v[0], 1.5 * world.size());
  std::string s = world.rank() == 0 ? "hello" : "";
  world.broadcast_string(s, 0);
  EXPECT_EQ(s, "hello");
}

}  // namespace
}  // namespace amlq
