// tokenizer.json, model.type BPE. Two targets over one body so that each flavour
// gets its own corpus and time: byte-level (GPT-2, Llama-3, Qwen2) and
// SentencePiece-style (Llama-2, Mistral: Metaspace, byte fallback).
#include "io/tokenizer/formats.h"
#include "tests/fuzz/targets/tokenizer_common.h"

namespace amlq {
namespace {

void hf_tokenizer(fuzz::Input input) {
  const auto tok = parse_hf_tokenizer(fuzz::text(input), "tokenizer.json");
  fuzz::exercise_tokenizer(*tok, fuzz::text(input));
}

}  // namespace

AMLQ_FUZZ_TARGET(tokenizer_hf_bytelevel, ErrorKind::Input) { hf_tokenizer(input); }
AMLQ_FUZZ_TARGET(tokenizer_hf_sentencepiece, ErrorKind::Input) { hf_tokenizer(input); }

}  // namespace amlq
