// llama2.c's tokenizer format: int32 max_token_length, then per token
// float32 score, int32 byte length, the bytes. The encoding rule is
// SentencePiece BPE as llama2.c implements it: a dummy-prefix space, one symbol
// per code point (bytes as <0xXX> = id byte+3 when the code point has no piece),
// then merge the adjacent pair whose concatenation is the highest-scoring piece.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unordered_map>

#include "core/error.h"
#include "io/tokenizer/bpe_merge.h"
#include "io/tokenizer/formats.h"
#include "io/tokenizer/unicode.h"

namespace amlq {
namespace {

constexpr int kBos = 1;
constexpr int kEos = 2;
constexpr int kFirstByteToken = 3;

// "<0x41>" -> 0x41, else -1.
int byte_piece_value(std::string_view p) {
  if (p.size() != 6 || !p.starts_with("<0x") || p[5] != '>') return -1;
  auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
  const int hi = hex(p[3]), lo = hex(p[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

class Llama2cTokenizer final : public Tokenizer {
 public:
  Llama2cTokenizer(std::string_view data, const std::string& path) : path_(path) { load(data); }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    std::vector<int32_t> ids;
    ids.reserve(text.size() + 2);
    if (!text.empty()) {
      push_piece(ids, " ");
      for (size_t i = 0; i < text.size();) {
        const size_t len = unicode::utf8_length_at(text, i);
        push_piece(ids, text.substr(i, len));
        i += len;
      }
    }
    std::string joined;
    bpe_merge(ids, [&](int32_t a, int32_t b, BpeMerge& m) {
      joined.assign(pieces_[static_cast<size_t>(a)]);
      joined += pieces_[static_cast<size_t>(b)];
      const auto it = lookup_.find(joined);
      if (it == lookup_.end()) return false;
      m.key = -static_cast<double>(scores_[static_cast<size_t>(it->second)]);
      m.merged_id = it->second;
      return true;
    }, [&](int32_t id) { return !mergeable_[static_cast<size_t>(id)]; });
    if (add_special && vocab_size() > kBos) ids.insert(ids.begin(), kBos);
    return ids;
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::string out;
    bool first = true;
    for (const int32_t id : ids) {
      AMLQ_REQUIRE(id >= 0 && id < vocab_size(), "{}: cannot decode token id {} (vocabulary has {} tokens)", path_,
                   id, vocab_size());
      if (id == kBos || id == kEos) continue;
      std::string_view piece = pieces_[static_cast<size_t>(id)];
      // The dummy prefix added by encode (SentencePiece strips it at the start).
      if (first && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
      first = false;
      if (const int byte = byte_piece_value(piece); byte >= 0)
        out += static_cast<char>(byte);
      else
        out += piece;
    }
    return out;
  }

  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return vocab_size() > kBos ? kBos : -1; }
  int eos_id() const override { return vocab_size() > kEos ? kEos : -1; }
  std::string description() const override {
    return fmt::format("llama2.c {} ({} tokens)", std::filesystem::path(path_).filename().string(), vocab_size());
  }

 private:
  void push_piece(std::vector<int32_t>& ids, std::string_view piece) const {
    const auto it = lookup_.find(piece);
    if (it != lookup_.end()) {
      ids.push_back(it->second);
      return;
    }
    for (const char c : piece) {
      const int id = kFirstByteToken + static_cast<unsigned char>(c);
      AMLQ_REQUIRE(id < vocab_size(), "{}: text needs byte token {} but the vocabulary has only {} tokens", path_, id,
                   vocab_size());
      ids.push_back(id);
    }
  }

  void load(std::string_view data) {
    size_t pos = 0;
    auto read_i32 = [&](const char* what, size_t token) {
      AMLQ_REQUIRE(pos + 4 <= data.size(), "{}: truncated llama2.c tokenizer: {} of token {} missing at byte {}", path_,
                   what, token, pos);
      int32_t v;
      std::memcpy(&v, data.data() + pos, 4);
      pos += 4;
      return v;
    };
    AMLQ_REQUIRE(data.size() >= 4, "{}: not a llama2.c tokenizer ({} bytes)", path_, data.size());
    const int32_t max_len = read_i32("header", 0);
    AMLQ_REQUIRE(max_len > 0 && max_len < (1 << 20), "{}: not a llama2.c tokenizer (max_token_length {})", path_,
                 max_len);
    while (pos < data.size()) {
      const size_t token = pieces_.size();
      const int32_t score_bits = read_i32("score", token);
      float score;
      std::memcpy(&score, &score_bits, 4);
      const int32_t len = read_i32("length", token);
      AMLQ_REQUIRE(std::isfinite(score), "{}: token {} has a non-finite score", path_, token);
      AMLQ_REQUIRE(len >= 0 && len <= max_len, "{}: token {} has length {} (max_token_length {})", path_, token, len,
                   max_len);
      AMLQ_REQUIRE(pos + static_cast<size_t>(len) <= data.size(),
                   "{}: truncated llama2.c tokenizer: token {} needs {} bytes at byte {}, file has {}", path_, token,
                   len, pos, data.size());
      pieces_.emplace_back(data.substr(pos, static_cast<size_t>(len)));
      scores_.push_back(score);
      pos += static_cast<size_t>(len);
    }
    AMLQ_REQUIRE(pieces_.size() > kFirstByteToken, "{}: llama2.c tokenizer has only {} tokens", path_,
                 pieces_.size());
    for (size_t i = 0; i < pieces_.size(); ++i) lookup_.emplace(pieces_[i], static_cast<int32_t>(i));
    // A token can take part in a merge only as one half of some piece's split.
    mergeable_.assign(pieces_.size(), 0);
    for (const auto& piece : pieces_) {
      const std::string_view p = piece;
      for (size_t k = 1; k < p.size(); ++k) {
        const auto left = lookup_.find(p.substr(0, k)), right = lookup_.find(p.substr(k));
        if (left != lookup_.end() && right != lookup_.end()) {
          mergeable_[static_cast<size_t>(left->second)] = 1;
          mergeable_[static_cast<size_t>(right->second)] = 1;
        }
      }
    }
  }

  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::string path_;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<char> mergeable_;  // by id: is one half of some piece
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> lookup_;  // first id wins for duplicates
};

}  // namespace

std::unique_ptr<Tokenizer> parse_llama2c_tokenizer(std::string_view bytes, const std::string& origin) {
  return std::make_unique<Llama2cTokenizer>(bytes, origin);
}

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  AMLQ_REQUIRE(f, "{}: cannot open tokenizer file", path);
  const std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  AMLQ_REQUIRE(!f.bad(), "{}: read error", path);
  return parse_llama2c_tokenizer(data, path);
}

}  // namespace amlq
