#pragma once
// The concrete tokenizer formats behind load_tokenizer().
#include <memory>
#include <string>
#include <string_view>

#include "io/tokenizer/tokenizer.h"

namespace amlq {

// llama2.c's tokenizer.bin / tok*.bin.
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path);
// Hugging Face tokenizer.json (model.type BPE).
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path);

// The parsers behind the two loaders, on the file's bytes; `origin` names them in
// errors (and in description()).
std::unique_ptr<Tokenizer> parse_llama2c_tokenizer(std::string_view bytes, const std::string& origin);
std::unique_ptr<Tokenizer> parse_hf_tokenizer(std::string_view json_text, const std::string& origin);

}  // namespace amlq
