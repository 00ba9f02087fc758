// Placeholder: implemented by the model-execution work (issue 4).
#include "backend/cpu/cpu_ops.h"
#include "core/error.h"

namespace amlq::cpu {
void linear(const MatrixF&, const MatrixF&, const VectorF&, MatrixF&) { AMLQ_FAIL(Internal, "not implemented yet"); }
void rms_norm(const MatrixF&, const VectorF&, float, MatrixF&) { AMLQ_FAIL(Internal, "not implemented yet"); }
void rope(MatrixF&, int, int, int, int, const MatrixF&, const MatrixF&) { AMLQ_FAIL(Internal, "not implemented yet"); }
void attention(const MatrixF&, const MatrixF&, const MatrixF&, int, int, int, int, int, MatrixF&) {
  AMLQ_FAIL(Internal, "not implemented yet");
}
void swiglu(const MatrixF&, const MatrixF&, MatrixF&) { AMLQ_FAIL(Internal, "not implemented yet"); }
}  // namespace amlq::cpu
