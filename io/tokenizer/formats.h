#pragma once
// The concrete tokenizer formats behind load_tokenizer().
#include <memory>
#include <string>

#include "io/tokenizer/tokenizer.h"

namespace amlq {

// llama2.c's tokenizer.bin / tok*.bin.
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path);
// Hugging Face tokenizer.json (model.type BPE).
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path);

}  // namespace amlq
