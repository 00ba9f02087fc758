// amlq tokenize: text -> token ids (.u32, or .u16 when every id fits), once for many runs.
#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "io/tokenizer/tokenizer.h"
#include "launch/commands.h"

namespace amlq::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::string data;
  std::string out;
  bool no_special = false;
};

template <class T>
void write_ids(const std::string& path, const std::vector<int32_t>& ids) {
  std::vector<T> narrow(ids.begin(), ids.end());  // ids are non-negative and checked to fit
  AtomicOutput output(path);
  std::FILE* f = std::fopen(output.temp_path().c_str(), "wb");
  if (!f) AMLQ_FAIL(Output, "{}: cannot create {}: {}", path, output.temp_path(), std::strerror(errno));
  const size_t written = std::fwrite(narrow.data(), sizeof(T), narrow.size(), f);
  const bool ok = written == narrow.size() && std::fflush(f) == 0;
  const int close_rc = std::fclose(f);
  if (!ok || close_rc != 0) AMLQ_FAIL(Output, "{}: write failed: {}", path, std::strerror(errno));
  output.commit();
}

void tokenize(const TokenizeOptions& o) {
  const std::string ext = std::filesystem::path(o.out).extension().string();
  if (ext != ".u32" && ext != ".u16")
    AMLQ_FAIL(Usage, "--out {}: the id file must end in .u32 (uint32 little-endian) or .u16", o.out);
  const auto tok = load_tokenizer(o.tokenizer);
  AMLQ_LOG_INFO("tokenizer: {}", tok->description());

  std::ifstream in(o.data, std::ios::binary);
  AMLQ_REQUIRE(in, "{}: cannot open text file", o.data);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  AMLQ_REQUIRE(!in.bad(), "{}: read error", o.data);

  const Timer timer;
  const std::vector<int32_t> ids = tok->encode(text, !o.no_special);
  const double seconds = timer.seconds();
  if (ext == ".u16") {
    AMLQ_REQUIRE(tok->vocab_size() <= 65536, "--out {}: vocabulary has {} tokens, too many for uint16 ids; use .u32",
                 o.out, tok->vocab_size());
    write_ids<uint16_t>(o.out, ids);
  } else {
    write_ids<uint32_t>(o.out, ids);
  }
  fmt::print("{}: {} bytes -> {} tokens in {:.2f} s ({:.0f} tokens/s), {}\n", o.out, text.size(), ids.size(), seconds,
             seconds > 0 ? static_cast<double>(ids.size()) / seconds : 0.0, tok->description());
}

}  // namespace

void add_tokenize_command(CLI::App& app, const GlobalOptions& global, Runner& run) {
  auto* cmd = app.add_subcommand("tokenize", "Tokenize a text file into ids (.u32) once for many runs");
  auto opts = std::make_shared<TokenizeOptions>();
  cmd->add_option("--tokenizer", opts->tokenizer, "tokenizer.json, a llama2.c tok*.bin, or a model directory")
      ->required();
  cmd->add_option("--data", opts->data, "UTF-8 text file (tokenized as one string)")->required();
  cmd->add_option("--out", opts->out, "Output ids: .u32 (uint32 little-endian) or .u16")->required();
  cmd->add_flag("--no-special", opts->no_special, "Do not add BOS / the post-processor's special tokens");
  cmd->callback([&run, opts] { run = [opts] { tokenize(*opts); }; });
}

}  // namespace amlq::cli
