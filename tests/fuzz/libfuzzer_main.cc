// The libFuzzer entry points of a fuzz_<name> binary; AMLQ_FUZZ_TARGET_NAME
// (set by tests/fuzz/CMakeLists.txt) picks the target among those linked in.
#include "core/log.h"
#include "tests/fuzz/fuzz_target.h"

namespace {
const amlq::fuzz::Target* the_target = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  amlq::log::init(0, 1, amlq::log::Level::Off);
  the_target = amlq::fuzz::find_target(AMLQ_FUZZ_TARGET_NAME);
  if (!the_target) amlq::fuzz::fail(fmt::format("no fuzz target named {} is linked in", AMLQ_FUZZ_TARGET_NAME));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  amlq::fuzz::run_one(*the_target, {data, size});
  return 0;
}
