#pragma once
// A block of consecutive processing-order columns that GPTQ handles with one
// in-block kernel launch and one trailing GEMM (planned by kernels/gptq_plan.h).
namespace amlq::cuda {

struct ColumnBlock {
  int begin = 0;
  int end = 0;
  int part = 0;
};

}  // namespace amlq::cuda
