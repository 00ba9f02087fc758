#include "model/hessian_accumulator.h"

#include "core/error.h"

namespace amlq {

HessianAccumulator::HessianAccumulator(int n, int samples_per_block) : n_(n), samples_per_block_(samples_per_block) {
  AMLQ_ASSERT(n > 0 && samples_per_block > 0, "n={} samples_per_block={}", n, samples_per_block);
}

void HessianAccumulator::add(Backend& backend, const MatrixF& x, int64_t first_sample, int num_samples) {
  AMLQ_ASSERT(n_ > 0, "accumulator not initialized");
  AMLQ_ASSERT(x.cols() == n_, "input has {} channels, accumulator {}", x.cols(), n_);
  AMLQ_ASSERT(num_samples > 0 && x.rows() % num_samples == 0, "{} rows do not split into {} samples", x.rows(),
              num_samples);
  if (next_sample_ < 0) {
    AMLQ_ASSERT(first_sample % samples_per_block_ == 0, "first sample {} does not start a block of {}", first_sample,
                samples_per_block_);
    next_sample_ = first_sample;
  }
  AMLQ_ASSERT(first_sample == next_sample_, "samples out of order: got {}, expected {}", first_sample, next_sample_);
  const int64_t tokens_per_sample = x.rows() / num_samples;
  MatrixF sample(tokens_per_sample, n_);
  for (int s = 0; s < num_samples; ++s) {
    const int64_t index = first_sample + s;
    if (!current_open_) {
      current_ = Node{index / samples_per_block_, index / samples_per_block_ + 1, 0, MatrixD::Zero(n_, n_),
                      VectorD::Zero(n_)};
      current_open_ = true;
    }
    sample = x.middleRows(s * tokens_per_sample, tokens_per_sample);
    backend.accumulate_hessian(sample, current_.h, current_.abs_sum);
    current_.tokens += tokens_per_sample;
    if ((index + 1) % samples_per_block_ == 0) {
      push(std::move(current_));
      current_open_ = false;
    }
  }
  next_sample_ = first_sample + num_samples;
}

void HessianAccumulator::finish() {
  if (current_open_) {
    push(std::move(current_));
    current_open_ = false;
  }
}

void HessianAccumulator::push(Node node) {
  nodes_.push_back(std::move(node));
  // Merge siblings of the global aligned tree: a left node starting at a multiple
  // of twice its size, immediately followed by a right node of the same size.
  while (nodes_.size() >= 2) {
    Node& left = nodes_[nodes_.size() - 2];
    Node& right = nodes_.back();
    const int64_t size = left.end_block - left.begin_block;
    const bool siblings = right.end_block - right.begin_block == size && right.begin_block == left.end_block &&
                          left.begin_block % (2 * size) == 0;
    if (!siblings) break;
    left.h += right.h;
    left.abs_sum += right.abs_sum;
    left.tokens += right.tokens;
    left.end_block = right.end_block;
    nodes_.pop_back();
  }
}

void HessianAccumulator::merge(std::vector<Node> nodes) {
  AMLQ_ASSERT(!current_open_, "merge() before finish()");
  for (auto& node : nodes) {
    if (n_ == 0) n_ = static_cast<int>(node.h.rows());
    AMLQ_ASSERT(node.h.rows() == n_, "merging a {}-channel node into a {}-channel accumulator", node.h.rows(), n_);
    AMLQ_ASSERT(nodes_.empty() || nodes_.back().end_block == node.begin_block,
                "nodes merged out of order: [{}, {}) after block {}", node.begin_block, node.end_block,
                nodes_.empty() ? 0 : nodes_.back().end_block);
    push(std::move(node));
  }
}

HessianAccumulator::Node HessianAccumulator::fold() const {
  AMLQ_ASSERT(!current_open_, "call finish() before reading the Hessian");
  if (nodes_.empty()) AMLQ_FAIL(Numerical, "no calibration tokens reached this layer");
  Node result = nodes_.back();
  for (size_t i = nodes_.size() - 1; i-- > 0;) {
    result.h = nodes_[i].h + result.h;
    result.abs_sum = nodes_[i].abs_sum + result.abs_sum;
    result.tokens += nodes_[i].tokens;
  }
  return result;
}

int64_t HessianAccumulator::tokens() const {
  int64_t t = current_open_ ? current_.tokens : 0;
  for (const auto& node : nodes_) t += node.tokens;
  return t;
}

MatrixD HessianAccumulator::hessian() const {
  const Node total = fold();
  return total.h * (2.0 / static_cast<double>(total.tokens));
}

VectorD HessianAccumulator::act_scale() const {
  const Node total = fold();
  return total.abs_sum / static_cast<double>(total.tokens);
}

}  // namespace amlq
