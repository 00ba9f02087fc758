#include "lowrank/lowrank_types.h"

#include "core/error.h"

namespace amlq {

std::string lowrank_method_name(LowRankMethod method) {
  switch (method) {
    case LowRankMethod::None: return "none";
    case LowRankMethod::Svd: return "svd";
    case LowRankMethod::L2qer: return "l2qer";
    case LowRankMethod::Whiten: return "whiten";
  }
  AMLQ_FAIL(Internal, "unknown low-rank method {}", static_cast<int>(method));
}

LowRankMethod parse_lowrank_method(std::string_view name) {
  if (name == "none") return LowRankMethod::None;
  if (name == "svd" || name == "lqer") return LowRankMethod::Svd;
  if (name == "l2qer") return LowRankMethod::L2qer;
  if (name == "whiten") return LowRankMethod::Whiten;
  AMLQ_FAIL(Usage, "unknown low-rank method '{}' (expected none, svd, l2qer or whiten)", name);
}

std::string factor_format_name(FactorFormat format) { return format == FactorFormat::Fp16 ? "fp16" : "int8"; }

FactorFormat parse_factor_format(std::string_view name) {
  if (name == "fp16") return FactorFormat::Fp16;
  if (name == "int8") return FactorFormat::Int8;
  AMLQ_FAIL(Usage, "unknown factor format '{}' (expected fp16 or int8)", name);
}

int factor_bits(FactorFormat format) { return format == FactorFormat::Fp16 ? 16 : 8; }

}  // namespace amlq
