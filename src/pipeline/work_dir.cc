#include "pipeline/work_dir.h"

#include <fmt/format.h>

#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"

namespace amlq {

namespace fs = std::filesystem;

std::string WorkDir::measure_layer(int layer) const { return fmt::format("{}/measure/layer_{:05d}.json", root, layer); }
std::string WorkDir::pack_layer(int layer) const {
  return fmt::format("{}/{}/layer_{:05d}.h5", root, pack_folder, layer);
}

WorkDir WorkDir::for_candidate(int k) const {
  WorkDir out = *this;
  if (k > 0) out.pack_folder = fmt::format("pack/candidate-{}", k);
  return out;
}
std::string WorkDir::calib_layer(int layer) const { return fmt::format("{}/calib/layer_{:05d}.h5", root, layer); }

void WorkDir::create() const {
  for (const std::string& sub : {std::string(), std::string("/measure"), "/" + pack_folder}) {
    std::error_code ec;
    fs::create_directories(root + sub, ec);
    if (ec) AMLQ_FAIL(Output, "{}{}: cannot create the work directory: {}", root, sub, ec.message());
  }
}

int WorkDir::remove_temporaries() const { return remove_temporaries_under(root); }

int64_t WorkDir::bytes() const {
  std::error_code ec;
  if (!fs::exists(root, ec)) return 0;
  int64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      const auto size = it->file_size(size_ec);
      if (!size_ec) total += static_cast<int64_t>(size);
    }
  }
  return total;
}

}  // namespace amlq
