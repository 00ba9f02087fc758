// Dataset files (--calib, --eval, tokenize input) and the calibration sampler.
// Byte 0 picks the reader the file extension would pick (0 .u16, 1 .u32, 2 .npy,
// 3 text) and byte 1 the sampling; the rest is the file.
#include "io/tokenizer/dataset.h"
#include "io/tokenizer/formats.h"
#include "tests/fuzz/fuzz_target.h"

namespace amlq {
namespace {

// A small llama2.c vocabulary for the text reader: the 3 specials, the 256 byte
// tokens, a few merges.
const Tokenizer& text_tokenizer() {
  static const auto tok = [] {
    std::string bin;
    auto put_i32 = [&](int32_t v) { bin.append(reinterpret_cast<const char*>(&v), 4); };
    auto put_token = [&](float score, const std::string& piece) {
      bin.append(reinterpret_cast<const char*>(&score), 4);
      put_i32(static_cast<int32_t>(piece.size()));
      bin += piece;
    };
    put_i32(8);
    for (const char* s : {"<unk>", "<s>", "</s>"}) put_token(0, s);
    for (int b = 0; b < 256; ++b) put_token(0, fmt::format("<0x{:02X}>", b));
    float score = -1;
    for (const char* s : {" ", "e", "t", "th", " t", " th", "the", " the", "he", "in", "an", " a"})
      put_token(score--, s);
    return parse_llama2c_tokenizer(bin, "fuzz-text-tokenizer.bin");
  }();
  return *tok;
}

}  // namespace

AMLQ_FUZZ_TARGET(dataset, ErrorKind::Input) {
  if (input.size() < 2) return;
  const auto format = static_cast<DatasetFormat>(input[0] % 4);
  const uint8_t sampling = input[1];
  const std::string_view file = fuzz::text(input.subspan(2));
  const int vocab = text_tokenizer().vocab_size();
  const auto ids = parse_token_ids(file, format, "fuzz-dataset", &text_tokenizer(), vocab);
  for (const int32_t id : ids) AMLQ_FUZZ_CHECK(id >= 0 && id < vocab, "id {} outside vocabulary {}", id, vocab);
  CalibrationSpec spec;
  spec.num_samples = 1 + (sampling & 7);
  spec.seqlen = 1 + (sampling >> 3 & 15);
  spec.random_offsets = sampling & 128;
  spec.seed = sampling;
  const auto samples = sample_calibration(ids, spec);
  AMLQ_FUZZ_CHECK(samples.size() == static_cast<size_t>(spec.num_samples), "{} samples", samples.size());
  for (const auto& s : samples) AMLQ_FUZZ_CHECK(s.size() == static_cast<size_t>(spec.seqlen), "{} ids", s.size());
}

}  // namespace amlq
