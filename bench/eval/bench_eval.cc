// Throughput of the FP forward pass on the CPU backend, against this machine's
// measured single-thread GEMM rate:
//   bench_eval [--windows N] [--shared DIR]
// Rows: stories260K perplexity eval (seqlen 512, first N windows of WikiText-2
// test), and one synthetic 7B-shaped decoder layer (hidden 4096, intermediate
// 11008, 32 heads of 128) on one sequence of 128 and of 512 tokens.
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "backend/backend.h"
#include "core/timer.h"
#include "io/tokenizer/dataset.h"
#include "model/forward.h"
#include "model/perplexity.h"

namespace amlq {
namespace {

MatrixF random_matrix(std::mt19937_64& rng, Eigen::Index rows, Eigen::Index cols, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  MatrixF m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = dist(rng);
  return m;
}

// FLOPs of one forward token through a decoder layer at context length seqlen
// (causal attention: on average seqlen/2 keys per query).
double layer_flops_per_token(const ModelConfig& c, int seqlen) {
  double linear = 0;
  for (const auto& l : decoder_linears(c)) linear += 2.0 * static_cast<double>(l.numel());
  const double attention = 2.0 * 2.0 * c.num_heads * c.head_dim * (seqlen + 1) / 2.0;
  return linear + attention;
}

// Single-thread GEMM rate of the CPU backend's linear on a large square-ish problem.
double measure_gemm_gflops(Backend& backend) {
  std::mt19937_64 rng(1);
  const MatrixF x = random_matrix(rng, 512, 2048, 1.0f), w = random_matrix(rng, 2048, 2048, 1.0f);
  MatrixF y;
  backend.linear(x, w, VectorF(), y);  // warm-up
  Timer t;
  int reps = 0;
  while (t.seconds() < 2.0) {
    backend.linear(x, w, VectorF(), y);
    ++reps;
  }
  return 2.0 * 512 * 2048 * 2048 * reps / t.seconds() / 1e9;
}

struct Row {
  std::string name;
  int64_t tokens;
  double seconds;
  double gflops;
};

}  // namespace
}  // namespace amlq

int main(int argc, char** argv) {
  using namespace amlq;
  int windows = 200;
  std::string shared = AMLQ_SHARED_DIR;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--windows")) windows = std::stoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--shared")) shared = argv[i + 1];
  }
  auto backend = make_backend("cpu");
  const double peak = measure_gemm_gflops(*backend);
  std::vector<Row> rows;

  const std::string model_dir = shared + "/models/stories260K";
  if (!std::filesystem::exists(model_dir)) {
    fmt::print(stderr, "{} not found: skipping the stories260K row (pass --shared DIR)\n", model_dir);
  } else {
    const ModelWeights w = load_model_weights(model_dir);
    const auto ids = load_token_ids(shared + "/data/wikitext2/test.tok512.u16", nullptr, 512);
    const auto r = evaluate_perplexity(*backend, w, ids, 512, windows, 8);
    const double per_token = w.config.num_layers * layer_flops_per_token(w.config, 512) +
                             2.0 * w.config.vocab_size * w.config.hidden_size * 511.0 / 512.0;
    rows.push_back({fmt::format("stories260K eval, {} x 512 (ppl {:.3f})", r.windows, r.ppl), r.windows * 512,
                    r.seconds, per_token * r.windows * 512 / r.seconds / 1e9});
  }

  ModelConfig c;
  c.hidden_size = 4096;
  c.intermediate_size = 11008;
  c.num_layers = 1;
  c.num_heads = c.num_kv_heads = 32;
  c.head_dim = 128;
  c.vocab_size = 32000;
  c.max_position = 4096;
  std::mt19937_64 rng(2);
  DecoderLayerWeights layer;
  layer.input_norm = VectorF::Ones(c.hidden_size);
  layer.post_attention_norm = VectorF::Ones(c.hidden_size);
  for (const auto& spec : decoder_linears(c)) {
    LinearWeights l;
    l.dense = random_matrix(rng, spec.rows, spec.cols, 0.02f);
    layer.linears.push_back(std::move(l));
  }
  for (const int tokens : {128, 512}) {
    const RopeTables rope = make_rope_tables(c, tokens);
    const MatrixF input = random_matrix(rng, tokens, c.hidden_size, 1.0f);
    MatrixF hidden = input;
    decoder_layer_forward(*backend, c, layer, rope, hidden, 1, tokens, nullptr);  // warm-up
    Timer t;
    int reps = 0;
    while (reps < 2 || t.seconds() < 3.0) {
      hidden = input;
      decoder_layer_forward(*backend, c, layer, rope, hidden, 1, tokens, nullptr);
      ++reps;
    }
    const double s = t.seconds() / reps;
    rows.push_back({fmt::format("7B-shaped decoder layer, 1 x {}", tokens), tokens, s,
                    layer_flops_per_token(c, tokens) * tokens / s / 1e9});
  }

  fmt::print("CPU backend, 1 thread; measured GEMM rate (512x2048 @ 2048x2048): {:.1f} GFLOP/s\n\n", peak);
  fmt::print("{:<48} {:>9} {:>9} {:>11} {:>9} {:>7}\n", "workload", "tokens", "seconds", "tokens/s", "GFLOP/s",
             "of GEMM");
  for (const auto& r : rows)
    fmt::print("{:<48} {:>9} {:>9.2f} {:>11.0f} {:>9.1f} {:>6.0f}%\n", r.name, r.tokens, r.seconds,
               r.tokens / r.seconds, r.gflops, 100.0 * r.gflops / peak);
  return 0;
}
