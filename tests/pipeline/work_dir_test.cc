#include "pipeline/work_dir.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace amlq {
namespace {

namespace fs = std::filesystem;

void touch(const fs::path& p) { std::ofstream(p) << "x"; }

TEST(WorkDir, RemovesOnlyTheTemporariesOfInterruptedRuns) {
  const fs::path root = fs::temp_directory_path() / ("amlq-workdir-test-" + std::to_string(::getpid()));
  fs::remove_all(root);
  WorkDir work{root.string()};
  work.create();
  touch(work.pack_layer(3) + ".tmp.12345");  // a rank killed while writing
  touch(work.pack_layer(2));                 // a finished checkpoint
  touch(root / "measure" / "layer_00001.json.tmp.999");
  touch(work.plan());
  EXPECT_EQ(work.remove_temporaries(), 2);
  EXPECT_FALSE(fs::exists(work.pack_layer(3) + ".tmp.12345"));
  EXPECT_TRUE(fs::exists(work.pack_layer(2)));
  EXPECT_TRUE(fs::exists(work.plan()));
  EXPECT_EQ(work.remove_temporaries(), 0);
  fs::remove_all(root);
  EXPECT_EQ(work.remove_temporaries(), 0);  // no directory: nothing to do
}

}  // namespace
}  // namespace amlq
