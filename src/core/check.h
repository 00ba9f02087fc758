#pragma once
// One family of checking macros for every external library amlq calls.
// A library plugs in by specializing StatusTraits for its status type:
//   static bool ok(T);  static std::string describe(T);
//   static constexpr ErrorKind kind;  static constexpr const char* library;
// then AMLQ_CHECK(call) works for it. AMLQ_CHECK_CUDA, _CUBLAS, _CUSOLVER, _NCCL,
// _MPI and _HDF5 are the same macro under the names reviewers grep for.
#include <string>
#include <type_traits>

#include "core/error.h"

namespace amlq {

template <typename Status, typename Enable = void>
struct StatusTraits;  // specialized next to each library's wrapper

template <typename Status>
inline void check_status(Status status, const char* expr, const char* file, int line) {
  using Traits = StatusTraits<std::decay_t<Status>>;
  if (!Traits::ok(status)) [[unlikely]] {
    throw_error(Traits::kind, file, line,
                fmt::format("{} call failed: {}: {}", Traits::library, expr, Traits::describe(status)));
  }
}

}  // namespace amlq

#define AMLQ_CHECK(CALL) ::amlq::check_status((CALL), #CALL, __FILE__, __LINE__)
#define AMLQ_CHECK_CUDA(CALL) AMLQ_CHECK(CALL)
#define AMLQ_CHECK_CUBLAS(CALL) AMLQ_CHECK(CALL)
#define AMLQ_CHECK_CUSOLVER(CALL) AMLQ_CHECK(CALL)
#define AMLQ_CHECK_NCCL(CALL) AMLQ_CHECK(CALL)
#define AMLQ_CHECK_MPI(CALL) AMLQ_CHECK(::amlq::MpiStatus{CALL})
#define AMLQ_CHECK_HDF5(CALL) AMLQ_CHECK(::amlq::Hdf5Status{CALL})
