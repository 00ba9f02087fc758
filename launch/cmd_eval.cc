// amlq eval MODEL --data FILE: perplexity (REFERENCE.md protocol).
// amlq generate MODEL --prompt TEXT: greedy decoding, a smoke test.
// MODEL is a checkpoint directory (plain or GPTQ) or an amlq .h5 file.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backend/backend.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "export/gptq_reader.h"
#include "io/tokenizer/dataset.h"
#include "io/tokenizer/tokenizer.h"
#include "launch/commands.h"
#include "model/generate.h"
#include "model/model_weights.h"
#include "model/perplexity.h"

namespace amlq::cli {
namespace {

bool is_quantized_model(const std::string& path) { return std::filesystem::path(path).extension() == ".h5"; }

// An amlq .h5, a GPTQ checkpoint directory (with its lowrank-adapter/ when
// present) or a plain checkpoint directory.
ModelWeights load_any_model(const std::string& path) {
  Timer timer;
  ModelWeights weights;
  if (is_quantized_model(path)) {
    weights = load_quantized_model_weights(path);
  } else if (checkpoint_kind(path) == CheckpointKind::Gptq) {
    int adapted = 0;
    weights = load_gptq_model_weights(path, &adapted);
    AMLQ_LOG_INFO("{}: GPTQ checkpoint{}", path,
                  adapted ? fmt::format(", LoRA adapter on {} linears", adapted) : std::string());
  } else {
    weights = load_model_weights(path);
  }
  AMLQ_LOG_INFO("loaded {} ({} layers) in {:.2f}s", path, weights.layers.size(), timer.seconds());
  return weights;
}

// The tokenizer: --tokenizer, else the model's directory (a checkpoint dir, or
// the folder of an .h5 file).
std::unique_ptr<Tokenizer> open_tokenizer(const std::string& model, const std::string& tokenizer_path) {
  if (!tokenizer_path.empty()) return load_tokenizer(tokenizer_path);
  if (is_quantized_model(model))
    AMLQ_FAIL(Usage, "{}: pass --tokenizer (a tokenizer file or model directory) to tokenize text", model);
  return load_tokenizer(model);
}

struct EvalOptions {
  std::string model;
  std::string data;
  std::string tokenizer;
  int seqlen = 512;
  int max_windows = 0;
  int batch = 8;
  bool json = false;
};

void run_eval(const EvalOptions& o, const GlobalOptions& global) {
  if (o.seqlen < 2) AMLQ_FAIL(Usage, "--seqlen {} must be at least 2", o.seqlen);
  if (o.batch < 1) AMLQ_FAIL(Usage, "--batch {} must be at least 1", o.batch);
  if (o.max_windows < 0) AMLQ_FAIL(Usage, "--max-windows {} must be >= 0", o.max_windows);
  const ModelWeights weights = load_any_model(o.model);
  std::unique_ptr<Tokenizer> tokenizer;
  if (!is_token_id_file(o.data)) tokenizer = open_tokenizer(o.model, o.tokenizer);
  const std::vector<int32_t> ids = load_token_ids(o.data, tokenizer.get(), weights.config.vocab_size);
  AMLQ_LOG_INFO("{}: {} tokens{}", o.data, ids.size(),
                tokenizer ? fmt::format(" ({})", tokenizer->description()) : std::string());
  auto backend = make_backend(global.backend);
  const PerplexityResult r = evaluate_perplexity(*backend, weights, ids, o.seqlen, o.max_windows, o.batch);

  if (o.json) {
    nlohmann::json j = {{"model", o.model},         {"data", o.data},
                        {"seqlen", o.seqlen},       {"windows", r.windows},
                        {"scored_tokens", r.scored_tokens}, {"mean_nll", r.mean_nll},
                        {"perplexity", r.ppl},      {"seconds", r.seconds},
                        {"tokens_per_second", r.tokens_per_second}, {"backend", backend->name()}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("model          {}\n", o.model);
  fmt::print("data           {} ({} tokens)\n", o.data, ids.size());
  fmt::print("windows        {} x {} tokens\n", r.windows, o.seqlen);
  fmt::print("scored tokens  {}\n", r.scored_tokens);
  fmt::print("mean NLL       {:.6f}\n", r.mean_nll);
  fmt::print("perplexity     {:.4f}\n", r.ppl);
  fmt::print("tokens/s       {:.0f} ({:.2f}s, {} backend)\n", r.tokens_per_second, r.seconds, backend->name());
}

struct GenerateOptions {
  std::string model;
  std::string prompt;
  std::string prompt_ids;
  std::string tokenizer;
  int tokens = 40;
  bool stop_at_eos = false;
};

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    try {
      size_t used = 0;
      const long v = std::stol(word, &used);
      if (used != word.size()) throw std::invalid_argument(word);
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::exception&) {
      AMLQ_FAIL(Usage, "--prompt-ids: '{}' is not an integer token id", word);
    }
  }
  return ids;
}

void run_generate(const GenerateOptions& o, const GlobalOptions& global) {
  if (o.prompt.empty() == o.prompt_ids.empty()) AMLQ_FAIL(Usage, "give exactly one of --prompt and --prompt-ids");
  if (o.tokens < 0) AMLQ_FAIL(Usage, "--tokens {} must be >= 0", o.tokens);
  const ModelWeights weights = load_any_model(o.model);
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<int32_t> prompt;
  if (!o.prompt.empty()) {
    tokenizer = open_tokenizer(o.model, o.tokenizer);
    prompt = tokenizer->encode(o.prompt, true);
  } else {
    prompt = parse_ids(o.prompt_ids);
    if (!o.tokenizer.empty() || !is_quantized_model(o.model)) {
      try {
        tokenizer = open_tokenizer(o.model, o.tokenizer);
      } catch (const Error& e) {
        AMLQ_LOG_WARN("no tokenizer, printing ids only: {}", e.what());
      }
    }
  }
  auto backend = make_backend(global.backend);
  Timer timer;
  const std::vector<int32_t> ids = greedy_generate(*backend, weights, prompt, o.tokens, o.stop_at_eos);
  AMLQ_LOG_INFO("generated {} tokens in {:.2f}s", ids.size() - prompt.size(), timer.seconds());
  fmt::print("ids   {}\n", fmt::join(ids, " "));
  if (tokenizer) fmt::print("text  {}\n", tokenizer->decode(ids));
}

}  // namespace

void add_eval_commands(CLI::App& app, const GlobalOptions& global, Runner& run) {
  {
    auto o = std::make_shared<EvalOptions>();
    auto* cmd = app.add_subcommand("eval", "Perplexity of a model (checkpoint, GPTQ checkpoint or amlq .h5) on a dataset");
    cmd->add_option("model", o->model,
                    "Model directory (config.json + safetensors, plain or GPTQ) or an amlq .h5 file")
        ->required();
    cmd->add_option("--data", o->data, "Token ids (.u16/.u32/.npy) or UTF-8 text (tokenized as one string)")
        ->required();
    cmd->add_option("--seqlen", o->seqlen, "Window length (non-overlapping windows)")->capture_default_str();
    cmd->add_option("--max-windows", o->max_windows, "Evaluate only the first N windows (0: all)")
        ->capture_default_str();
    cmd->add_option("--batch", o->batch, "Windows per forward pass")->capture_default_str();
    cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file or directory (default: the model directory)");
    cmd->add_flag("--json", o->json, "Print the result as JSON");
    cmd->callback([&run, &global, o] { run = [&global, o] { run_eval(*o, global); }; });
  }
  {
    auto o = std::make_shared<GenerateOptions>();
    auto* cmd = app.add_subcommand("generate", "Greedy generation from a prompt (smoke test)");
    cmd->add_option("model", o->model, "Model directory or an amlq .h5 file")->required();
    cmd->add_option("--prompt", o->prompt, "Prompt text (BOS is added)");
    cmd->add_option("--prompt-ids", o->prompt_ids, "Prompt as token ids, e.g. \"1 403\"");
    cmd->add_option("--tokens", o->tokens, "New tokens to generate")->capture_default_str();
    cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file or directory (default: the model directory)");
    cmd->add_flag("--stop-at-eos", o->stop_at_eos, "Stop at the end-of-sequence token");
    cmd->callback([&run, &global, o] { run = [&global, o] { run_generate(*o, global); }; });
  }
}

}  // namespace amlq::cli
