#pragma once
// Synthetic Llama-family checkpoints at the shapes users run, for benchmarks
// and tests that need a real-sized model without downloading one.
//
// Shapes: presets copy the config.json of the real models (see kPresets in
// synthetic_model.cc for the sources); --layers and the other shape options
// override single fields. The checkpoint is written as Hugging Face writes it:
// bf16 (or f16/f32) shards of about 5 GB plus model.safetensors.index.json,
// tensors named and ordered as in the HF state_dict, config.json last.
//
// Weights: every value is a deterministic function of (seed, tensor name,
// element index), drawn from a counter-based generator, so tensors and row
// blocks are produced by any number of threads in any order with identical
// bytes, and memory stays O(threads x block). The statistical model is
// documented at the top of synthetic_model.cc.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/dtype.h"
#include "io/model_config.h"

namespace amlq::synthetic {

struct Preset {
  std::string name;    // "llama2-70b"
  std::string source;  // the Hugging Face repository its config.json comes from
  nlohmann::ordered_json config;
};
// Every preset, in a fixed order.
const std::vector<Preset>& presets();
// The preset called `name`; Usage error listing the names if there is none.
const Preset& find_preset(const std::string& name);

// What to write. Zero / empty fields take the preset's value.
struct SyntheticOptions {
  std::string out;
  std::string preset;  // empty: a small custom Llama (the old make_synthetic_model defaults)
  int layers = 0;
  int hidden = 0;
  int intermediate = 0;
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int vocab = 0;
  DType dtype = DType::BF16;
  uint64_t shard_bytes = 5'000'000'000;
  uint64_t seed = 1;
  int threads = 0;    // 0: all cores
  bool sync = true;   // fdatasync each shard before it is renamed into place
};

// config.json for these options: the preset's JSON with the overrides applied
// and torch_dtype set to the written dtype. Usage error (naming the option)
// for an inconsistent combination; the result always parses with
// parse_model_config.
nlohmann::ordered_json synthetic_config_json(const SyntheticOptions& options);

// The parameters of the statistical model (see synthetic_model.cc). Exposed so
// tests can check the generated tensors against them.
struct StatsModel {
  double student_t_dof = 5;          // tails of every weight and norm
  double outlier_column_scale = 4;   // weight columns of outlier input channels (at most; see the model)
  double max_outlier_share = 2.0 / 3;  // of a linear's output variance coming from its outlier input channels
  double outlier_norm_gain = 6;      // RMSNorm weight of outlier hidden channels, relative to the layer's mean
  double residual_row_scale = 2.5;   // embedding columns and o_proj / down_proj rows writing outlier hidden channels
  double outlier_row_scale = 3;      // v_proj / gate_proj / up_proj rows feeding o_proj / down_proj outliers
  double row_spread = 0.15;          // log-scale spread of rows (output channels)
  double column_spread = 0.10;       // log-scale spread of columns (input channels)
  double drift_first = 0.8;          // weight scale of the first layer ...
  double drift_last = 1.25;          // ... and of the last, geometric in between
  double norm_mean_first = 0.25;     // mean RMSNorm weight of the first layer ...
  double norm_mean_last = 0.75;      // ... and of the last
  double norm_spread = 0.10;         // relative spread of RMSNorm weights
  double embedding_std = 0.02;
  double bias_std = 0.1;             // qkv biases, relative to the layer's activation scale
};

// Channels with outlier statistics: hidden channels (the same in every layer,
// as massive activations persist along the residual stream), and per layer
// the v_proj output rows and the intermediate (MLP) channels. Sorted.
struct OutlierChannels {
  std::vector<int> hidden;
  std::vector<std::vector<int>> value_rows;    // [layer] rows of v_proj (kv_heads * head_dim)
  std::vector<std::vector<int>> intermediate;  // [layer] rows of gate/up = columns of down_proj
};

// Generates the tensors of one checkpoint. Thread-safe and deterministic.
class SyntheticModel {
 public:
  SyntheticModel(const ModelConfig& config, uint64_t seed, StatsModel stats = {});

  const ModelConfig& config() const { return config_; }
  const StatsModel& stats() const { return stats_; }
  const OutlierChannels& outliers() const { return outliers_; }

  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    int64_t rows() const { return shape[0]; }
    int64_t cols() const { return shape.size() > 1 ? shape[1] : 1; }
  };
  // Every tensor of the checkpoint in Hugging Face state_dict order.
  const std::vector<Tensor>& tensors() const { return tensors_; }

  // Rows [row_begin, row_end) of tensor `index` as float32, row-major, into out
  // ((row_end - row_begin) * cols floats). 1-D tensors have cols() == 1.
  void generate(size_t index, int64_t row_begin, int64_t row_end, float* out) const;
  std::vector<float> generate(size_t index) const;  // the whole tensor (tests)
  // Linears: the scale of the outlier input columns relative to ordinary ones
  // (outlier_column_scale unless capped); 1 for other tensors.
  double outlier_column_scale(size_t index) const { return recipes_.at(index).outlier_scale; }

 private:
  enum class Kind { Embedding, InputNorm, PostNorm, FinalNorm, LmHead, Linear, Bias };
  struct Recipe {
    Kind kind = Kind::Linear;
    int layer = -1;
    int linear = -1;     // index into decoder_linears(config)
    uint64_t key = 0;            // counter-based generator key of this tensor
    double scale = 1.0;          // overall std of the unit-variance draws (sigma of the model)
    double outlier_scale = 1.0;  // linears: the column scale at outlier input channels
  };
  float row_scale(const Recipe& r, int64_t row) const;
  bool outlier_column(const Recipe& r, int64_t c) const;
  int64_t value_channel(int64_t o_proj_input) const;
  double input_energy(const Recipe& r, int64_t c) const;
  void column_scales(const Recipe& r, std::vector<float>& out) const;
  void set_linear_scales(Recipe& r) const;
  float norm_value(int layer, Kind kind, int64_t channel) const;
  double layer_drift(int layer) const;
  double norm_mean(int layer) const;

  ModelConfig config_;
  uint64_t seed_;
  StatsModel stats_;
  OutlierChannels outliers_;
  std::vector<LinearSpec> linears_;
  std::vector<Tensor> tensors_;
  std::vector<Recipe> recipes_;
  std::vector<uint64_t> input_norm_keys_, post_norm_keys_;  // [layer]
  std::vector<size_t> v_recipe_, gate_recipe_, up_recipe_;  // [layer] index into recipes_
  uint64_t final_norm_key_ = 0;
  uint64_t instance_ = 0;  // distinguishes models in per-thread caches
};

struct WriteSummary {
  uint64_t bytes = 0;  // tensor data
  size_t shards = 0;
  double seconds = 0;
  int64_t parameters = 0;
};
// Writes config.json + the safetensors shards (+ index) of these options to
// options.out, streaming row blocks from options.threads threads. `progress`
// (may be empty) is called with the bytes written so far, from one thread at a time.
WriteSummary write_synthetic_model(const SyntheticOptions& options,
                                   const std::function<void(uint64_t done, uint64_t total)>& progress = {});

}  // namespace amlq::synthetic
