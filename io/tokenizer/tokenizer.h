#pragma once
// Text <-> token ids. Three formats behind one interface: llama2.c tok*.bin
// (SentencePiece-style score-ordered BPE), and Hugging Face tokenizer.json with
// model.type BPE in its byte-level (GPT-2, Llama-3, Qwen2) or SentencePiece
// (Llama-2, Mistral: Metaspace / Prepend+Replace, byte fallback) flavour.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace amlq {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // add_special: add BOS etc. as the tokenizer's own convention does
  // (llama2.c: BOS first; tokenizer.json: its post-processor template, if any).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special) const = 0;
  // Inverse of encode: special tokens are dropped, the dummy-prefix space is stripped.
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;  // -1 if none
  virtual int eos_id() const = 0;  // -1 if none
  // One line for logs, e.g. "llama2.c tok512.bin (512 tokens)".
  virtual std::string description() const = 0;
};

// path: a tokenizer file (tokenizer.json or a llama2.c tok*.bin), or a model
// directory (uses its tokenizer.json, else its only tok*.bin).
// Any defect or unsupported component: Input error naming the file and what.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace amlq
