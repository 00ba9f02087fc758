#include "model/hessian_accumulator.h"

#include <algorithm>

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
  // One backend call per sample: the fp32 product of a sample's tokens is added
  // to the block in fp64 in sample order, so neither the micro-batch size nor the
  // replica split changes a single bit (and fp32 rounding stays within a sample).
  thread_local MatrixF sample;
  for (int s = 0; s < num_samples; ++s) {
    const int64_t index = first_sample + s;
    if (!current_open_) {
      current_ = Node{index / samples_per_block_, index / samples_per_block_ + 1, 0, MatrixD::Zero(n_, n_),
                      VectorD::Zero(n_)};
      current_open_ = true;
    }
    if (num_samples == 1) {
      backend.accumulate_hessian(x, current_.h, current_.abs_sum);
    } else {
      sample = x.middleRows(s * tokens_per_sample, tokens_per_sample);
      backend.accumulate_hessian(sample, current_.h, current_.abs_sum);
    }
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

std::vector<HessianAccumulator::Node> HessianAccumulator::take_nodes() {
  AMLQ_ASSERT(!current_open_, "take_nodes() before finish()");
  std::vector<Node> out = std::move(nodes_);
  nodes_.clear();
  return out;
}

void HessianAccumulator::fold_in_place() {
  AMLQ_ASSERT(!current_open_, "call finish() before reading the Hessian");
  if (nodes_.empty()) AMLQ_FAIL(Numerical, "no calibration tokens reached this layer");
  // Right to left, as fold(): nodes[i] + (everything after it); fp64 addition is
  // commutative, so adding in place into nodes[i] gives the same bits.
  while (nodes_.size() > 1) {
    Node right = std::move(nodes_.back());
    nodes_.pop_back();
    Node& left = nodes_.back();
    left.h += right.h;
    left.abs_sum += right.abs_sum;
    left.tokens += right.tokens;
    left.end_block = right.end_block;
  }
}

HessianAccumulator::Result HessianAccumulator::take_result() {
  fold_in_place();
  Node node = std::move(nodes_.back());
  nodes_.clear();
  Result r;
  r.tokens = node.tokens;
  r.hessian = std::move(node.h);
  r.hessian *= 2.0 / static_cast<double>(node.tokens);
  r.act_scale = std::move(node.abs_sum);
  r.act_scale /= static_cast<double>(node.tokens);
  return r;
}

int HessianAccumulator::peak_matrices(int64_t first_block, int64_t blocks) {
  // Before block b is pushed, the waiting nodes are the aligned power-of-two runs
  // that tile [first_block, b) from the left; plus the open block itself.
  int peak = 0;
  for (int64_t b = first_block; b < first_block + blocks; ++b) {
    int waiting = 0;
    for (int64_t at = first_block; at < b;) {
      int64_t size = 1;
      while (at % (2 * size) == 0 && at + 2 * size <= b) size *= 2;
      at += size;
      ++waiting;
    }
    peak = std::max(peak, waiting + 1);
  }
  return std::max(peak, 1);
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
