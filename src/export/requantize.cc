#include "export/requantize.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "core/log.h"
#include "io/tokenizer/dataset.h"
#include "io/tokenizer/tokenizer.h"
#include "model/model_weights.h"
#include "model/sequential.h"
#include "pipeline/input_hash.h"
#include "pipeline/stages.h"
#include "quant/cost_model.h"

namespace amlq {

namespace fs = std::filesystem;

CalibrationRecord read_calibration_record(const std::string& extra_json, const std::string& origin) {
  nlohmann::json extra;
  try {
    extra = nlohmann::json::parse(extra_json.empty() ? "{}" : extra_json);
  } catch (const std::exception& e) {
    AMLQ_FAIL(Input, "{}: the 'extra' attribute is not valid JSON: {}", origin, e.what());
  }
  if (!extra.is_object() || !extra.contains("calibration") || !extra["calibration"].is_object())
    AMLQ_FAIL(Input,
              "{}: the file does not record its calibration options (extra.calibration; written by an older amlq?), "
              "which --requantize needs to regenerate statistics",
              origin);
  const auto& c = extra["calibration"];
  CalibrationRecord r;
  try {
    r.data = c.at("data").get<std::string>();
    r.data_hash = c.at("data_hash").get<std::string>();
    r.num_samples = c.at("num_samples").get<int>();
    r.seqlen = c.at("seqlen").get<int>();
    r.seed = c.at("seed").get<uint64_t>();
    r.random_offsets = c.at("random_offsets").get<bool>();
    r.batch = c.value("batch", r.batch);
    r.samples_per_block = c.value("samples_per_block", r.samples_per_block);
    if (extra.contains("gptq") && extra["gptq"].is_object()) {
      r.damp = extra["gptq"].value("damp", r.damp);
      r.block_size = extra["gptq"].value("block_size", r.block_size);
    }
  } catch (const nlohmann::json::exception& e) {
    AMLQ_FAIL(Input, "{}: extra.calibration is malformed: {}", origin, e.what());
  }
  AMLQ_REQUIRE(r.num_samples > 0 && r.seqlen > 0 && r.batch > 0 && r.samples_per_block > 0,
               "{}: extra.calibration has non-positive sizes", origin);
  return r;
}

namespace {

// The options pack_linear_choice reads, as the original run had them.
QuantizeOptions pack_options(const QuantizedModelHeader& header, const CalibrationRecord& record,
                             const PackedLinear& layer) {
  QuantizeOptions o;
  o.rtn = header.quantizer == "rtn";
  o.gptq.damp = record.damp;
  o.gptq.block_size = record.block_size;
  o.factor_format = layer.factor_format;
  o.lowrank = layer.rank > 0 ? layer.lowrank : parse_lowrank_method(header.lowrank_method);
  if (o.lowrank == LowRankMethod::None) o.lowrank = LowRankMethod::Whiten;
  return o;
}

void check_same_architecture(const ModelConfig& a, const ModelConfig& b, const std::string& model_dir,
                             const std::string& h5) {
  const bool same = a.arch == b.arch && a.hidden_size == b.hidden_size && a.intermediate_size == b.intermediate_size &&
                    a.num_layers == b.num_layers && a.num_heads == b.num_heads && a.num_kv_heads == b.num_kv_heads &&
                    a.head_dim == b.head_dim && a.vocab_size == b.vocab_size;
  AMLQ_REQUIRE(same, "{}: config.json does not describe the model quantized in {} (pass its source with --model)",
               model_dir, h5);
}

}  // namespace

std::vector<PackedLinear> requantize_linears(Backend& backend, const QuantizedModelFile& file,
                                             const std::vector<RequantizeTarget>& targets,
                                             const RequantizeSources& sources,
                                             const std::function<bool(const PackedLinear&)>& accept) {
  if (targets.empty()) return {};
  const QuantizedModel& layout = file.layout();
  const std::string& h5 = file.path();
  const CalibrationRecord record = read_calibration_record(layout.header.extra_json, h5);

  const std::string model_dir = sources.model_dir.empty() ? layout.header.source_model : sources.model_dir;
  std::error_code ec;
  AMLQ_REQUIRE(!model_dir.empty() && fs::is_directory(model_dir, ec),
               "{}: the source model '{}' is not a directory; --requantize needs it (pass --model DIR)", h5, model_dir);
  const ModelConfig config = load_model_config(model_dir);
  check_same_architecture(config, parse_model_config(layout.header.config_json, h5 + " (config_json)"), model_dir, h5);
  const Checkpoint checkpoint = Checkpoint::open(model_dir);

  const std::string data = sources.calib.empty() ? record.data : sources.calib;
  AMLQ_REQUIRE(fs::is_regular_file(data, ec), "{}: calibration data '{}' not found; --requantize needs it (pass --calib)",
               h5, data);
  AMLQ_REQUIRE(hash_data_file(data) == record.data_hash,
               "{}: calibration data '{}' differs from the file the model was quantized with (hash mismatch)", h5,
               data);
  std::unique_ptr<Tokenizer> tokenizer;
  if (!is_token_id_file(data)) tokenizer = load_tokenizer(model_dir);
  const std::vector<int32_t> ids = load_token_ids(data, tokenizer.get(), config.vocab_size);
  const CalibrationSpec spec{record.num_samples, record.seqlen, record.seed, record.random_offsets};
  const auto samples = sample_calibration(ids, spec);

  // Which layer holds which target.
  const auto linears = decoder_linears(config);
  std::map<int, std::vector<size_t>> by_layer;  // decoder layer -> target positions
  std::vector<std::pair<int, size_t>> where(targets.size());  // (layer, index in decoder_linears)
  for (size_t t = 0; t < targets.size(); ++t) {
    const std::string& name = layout.linears.at(targets[t].index).name;
    bool found = false;
    for (int layer = 0; layer < config.num_layers && !found; ++layer)
      for (size_t j = 0; j < linears.size() && !found; ++j)
        if (layer_tensor_name(layer, linears[j].name) == name) {
          where[t] = {layer, j};
          by_layer[layer].push_back(t);
          found = true;
        }
    AMLQ_REQUIRE(found, "{}: linear '{}' is not a decoder linear of {}", h5, name, model_dir);
  }
  const int end_layer = by_layer.rbegin()->first + 1;
  AMLQ_LOG_INFO("requantize: FP statistics of layers 0..{} from {} ({}, {})", end_layer - 1, model_dir, data,
                spec.describe());

  ModelWeights weights = load_model_weights(checkpoint, config, 0, end_layer, true, false);
  MatrixF hidden = embed_samples(weights, samples);
  SequentialOptions seq;
  seq.batch = record.batch;
  seq.samples_per_block = record.samples_per_block;
  std::vector<PackedLinear> out(targets.size());
  run_sequential(backend, weights, hidden, static_cast<int>(samples.size()), spec.seqlen, seq,
                 [&](int layer, LayerStatistics& stats) -> std::optional<DecoderLayerWeights> {
                   const auto it = by_layer.find(layer);
                   if (it == by_layer.end()) return std::nullopt;
                   for (size_t t : it->second) {
                     const LinearSpec& ls = linears[where[t].second];
                     const auto& acc = stats.site(ls.input);
                     SiteStatistics site;
                     site.hessian = acc.hessian();
                     site.act_scale = acc.act_scale();
                     site.tokens = acc.tokens();
                     const PackedLinear stored = file.read_linear(targets[t].index);
                     const MatrixF w = read_linear_weight(checkpoint, ls, layer);
                     const VectorF bias = stored.bias.empty()
                                              ? VectorF()
                                              : VectorF(Eigen::Map<const VectorF>(
                                                    stored.bias.data(), static_cast<Eigen::Index>(stored.bias.size())));
                     const QuantizeOptions options = pack_options(layout.header, record, stored);
                     Candidate choice = targets[t].choice;
                     choice.spec.validate(ls.rows, ls.cols, stored.name);
                     PackedLinear packed = pack_linear_choice(backend, options, stored.name, w, bias, site, choice);
                     if (accept && !accept(packed) && !choice.spec.symmetric) {
                       choice.spec.symmetric = true;
                       AMLQ_LOG_WARN("requantize: {} at {} is still not expressible; using {}", stored.name,
                                     targets[t].choice.spec.label(), choice.spec.label());
                       packed = pack_linear_choice(backend, options, stored.name, w, bias, site, choice);
                     }
                     out[t] = std::move(packed);
                   }
                   return std::nullopt;
                 });
  return out;
}

}  // namespace amlq
