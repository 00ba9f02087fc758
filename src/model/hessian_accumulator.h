#pragma once
// Accumulates H = (2/N) sum_t x_t x_t^T and s = mean_t |x_t| for one linear input
// (METHOD.md 1) so that the result is bit-identical however the calibration
// samples are batched or split across data-parallel replicas.
//
// Samples are grouped into fixed blocks of `samples_per_block` consecutive
// samples. A block's partial is the fp64 sum of its samples' partials in sample
// order; a sample's X^T X is formed by the backend (fp32 tiles over the sample's
// tokens, added in fp64: METHOD.md 1). Blocks are combined by a pairwise tree aligned to global block indices
// (node [k*2^j, (k+1)*2^j)), and the remaining aligned nodes are folded right to
// left. A replica owning a block-aligned range produces exactly the tree nodes a
// single process would, so merging replicas' nodes reproduces the single-process
// sum bit for bit (fp64 addition is commutative, and every addition has the same
// two operands in every configuration).
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "core/matrix.h"

namespace amlq {

class HessianAccumulator {
 public:
  struct Node {
    int64_t begin_block = 0;  // global block range [begin_block, end_block)
    int64_t end_block = 0;
    int64_t tokens = 0;
    MatrixD h;        // sum of x x^T over the node's tokens
    VectorD abs_sum;  // sum of |x| per channel
  };

  HessianAccumulator() = default;
  HessianAccumulator(int n, int samples_per_block);

  int dim() const { return n_; }
  int samples_per_block() const { return samples_per_block_; }

  // x holds `num_samples` consecutive samples (equal token counts) starting at
  // global sample index first_sample. Samples must arrive in increasing order
  // without gaps; the first one must start a block.
  void add(Backend& backend, const MatrixF& x, int64_t first_sample, int num_samples);

  // Closes the current partial block (call once all samples of this accumulator are in).
  void finish();

  // The aligned tree nodes accumulated so far (after finish()); for transport between ranks.
  const std::vector<Node>& nodes() const { return nodes_; }
  // Adds nodes from another accumulator (e.g. another replica). Together, the
  // nodes must cover consecutive blocks in order: merge replicas in block order.
  void merge(std::vector<Node> nodes);

  // Moves the nodes out (for sending them to other replicas); the accumulator is then empty.
  std::vector<Node> take_nodes();

  int64_t tokens() const;
  // (2/N) * sum x x^T, N = tokens. Throws Numerical if no token was seen. Copies.
  MatrixD hessian() const;
  // mean |x| per channel.
  VectorD act_scale() const;

  // The final statistics without copies: folds the nodes in place (the same
  // additions as hessian()) and moves the result out; the accumulator is then
  // empty. Memory stays at the nodes already held.
  struct Result {
    MatrixD hessian;
    VectorD act_scale;
    int64_t tokens = 0;
  };
  Result take_result();

  // Number of n x n fp64 matrices alive at most while `blocks` blocks are added
  // in order starting at an aligned block (the open block plus the tree nodes
  // waiting for a sibling): for the memory prediction (docs/DISTRIBUTED.md).
  static int peak_matrices(int64_t first_block, int64_t blocks);

 private:
  void push(Node node);
  Node fold() const;
  void fold_in_place();

  int n_ = 0;
  int samples_per_block_ = 1;
  int64_t next_sample_ = -1;
  Node current_;  // the open block
  bool current_open_ = false;
  std::vector<Node> nodes_;
};

}  // namespace amlq
