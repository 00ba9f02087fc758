#include "io/tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "io/tokenizer/formats.h"

namespace amlq {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  AMLQ_REQUIRE(fs::exists(path, ec), "{}: tokenizer file or model directory does not exist", path);
  if (fs::is_directory(path, ec)) {
    const fs::path json = fs::path(path) / "tokenizer.json";
    if (fs::is_regular_file(json, ec)) return load_hf_tokenizer(json.string());
    std::vector<std::string> bins;
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && name.starts_with("tok") && name.ends_with(".bin")) bins.push_back(entry.path().string());
    }
    std::sort(bins.begin(), bins.end());
    AMLQ_REQUIRE(!bins.empty(), "{}: no tokenizer.json or llama2.c tok*.bin in the model directory", path);
    AMLQ_REQUIRE(bins.size() == 1, "{}: several llama2.c tokenizers ({}); pass one with --tokenizer", path,
                 fmt::join(bins, ", "));
    return load_llama2c_tokenizer(bins.front());
  }
  if (fs::path(path).extension() == ".json") return load_hf_tokenizer(path);
  if (fs::path(path).extension() == ".model")
    AMLQ_FAIL(Input, "{}: SentencePiece .model files are not supported; use the model's tokenizer.json", path);
  return load_llama2c_tokenizer(path);
}

}  // namespace amlq
