#pragma once
// Packed-weight inference on the device: uploading a PackedLinear, the fused
// path for 1..16 tokens and the dequantize + SGEMM path for larger batches.
#include <memory>
#include <vector>

#include "kernels/cuda_context.h"
#include "kernels/dequant_kernels.h"
#include "kernels/device_buffer.h"
#include "quant/packed_linear.h"

namespace amlq::cuda {

// Owns the device copies of one packed layer; view() is what kernels take.
// Low-rank factors are stored as the fp32 values quant/pack.h unpack_factors
// gives (fp16, or int8 times its row scale), so both backends use equal factors.
class DevicePackedLayer {
 public:
  // Checks the layer's array sizes against its geometry (Input error naming the layer).
  static DevicePackedLayer upload(const PackedLinear& layer, cudaStream_t stream);
  const DevicePackedLinear& view() const { return view_; }

 private:
  DevicePackedLinear view_;
  std::vector<DeviceBuffer<uint32_t>> codes_, zeros_;
  std::vector<DeviceBuffer<uint16_t>> scales_;
  DeviceBuffer<int32_t> perm_;
  DeviceBuffer<float> a_, b_, bias_;
};

// Scratch of the fused path, grown on demand and reused across calls.
struct GemvWorkspace {
  DeviceBuffer<float> xp;  // x in processing order
  DeviceBuffer<float> t;   // B x
  void reserve(int tokens, int cols, int rank);
};

// True when the fused kernel handles this layer and batch.
bool fused_gemv_applies(const DevicePackedLinear& layer, int tokens);

// y (tokens x rows) = layer(x), x: tokens x cols in original column order. Both fused-only.
void dequant_gemv(CudaContext& ctx, const DevicePackedLinear& layer, const float* x, int tokens, float* y,
                  GemvWorkspace& ws);
// Any batch: dequantize to fp32 (original order) and SGEMM; low-rank by two SGEMMs.
void dequant_matmul(CudaContext& ctx, const DevicePackedLinear& layer, const float* x, int tokens, float* y);

}  // namespace amlq::cuda
