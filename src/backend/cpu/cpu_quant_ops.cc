// Placeholder: implemented by the quantization-core work (issue 3).
#include "backend/cpu/cpu_ops.h"
#include "core/error.h"

namespace amlq::cpu {
void accumulate_hessian(const MatrixF&, MatrixD&, VectorD&) { AMLQ_FAIL(Internal, "not implemented yet"); }
QuantizedMatrix quantize(const MatrixF&, const MatrixD&, const QuantSpec&, const GptqOptions&) {
  AMLQ_FAIL(Internal, "not implemented yet");
}
SvdResult svd(const MatrixD&, int) { AMLQ_FAIL(Internal, "not implemented yet"); }
void dequant_linear(const MatrixF&, const PackedLinear&, MatrixF&) { AMLQ_FAIL(Internal, "not implemented yet"); }
}  // namespace amlq::cpu
