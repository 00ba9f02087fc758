#include <utility>

#include "backend/backend.h"
#include "core/error.h"
#include "core/log.h"

namespace amlq {
namespace detail {
using BackendFactory = std::unique_ptr<Backend> (*)();
std::vector<std::pair<std::string, BackendFactory>> built_backends();
}  // namespace detail

std::vector<std::string> available_backends() {
  std::vector<std::string> out;
  for (const auto& [name, factory] : detail::built_backends()) out.push_back(name);
  return out;
}

std::unique_ptr<Backend> make_backend(const std::string& name) {
  const auto backends = detail::built_backends();
  if (name == "auto") {
    // Prefer an accelerator; a backend whose device is absent returns nullptr.
    for (auto it = backends.rbegin(); it != backends.rend(); ++it) {
      if (auto b = it->second()) return b;
    }
    AMLQ_FAIL(Internal, "no backend could be created");
  }
  std::string known;
  for (const auto& [n, factory] : backends) {
    if (n == name) {
      auto b = factory();
      if (!b) AMLQ_FAIL(Device, "backend '{}' is built but cannot run here (no device found)", name);
      return b;
    }
    known += (known.empty() ? "" : ", ") + n;
  }
  AMLQ_FAIL(Usage, "unknown backend '{}' (this build has: {}, auto)", name, known);
}

}  // namespace amlq
