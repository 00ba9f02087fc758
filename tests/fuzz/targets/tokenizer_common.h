#pragma once
// What the pipeline does with a tokenizer: encode text (a fixed sample with the
// cases tokenizers get wrong, plus the input itself), check every id is inside
// the vocabulary (ids index the embedding table), decode them back.
#include "io/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_target.h"

namespace amlq::fuzz {

inline void exercise_tokenizer(const Tokenizer& tok, std::string_view own_bytes) {
  static const std::string samples[] = {
      "Hello world! It's 2024, we'll see... don't.",
      " leading  and   trailing spaces \t\n\r\n",
      "na\xc3\xafve caf\xc3\xa9 \xe2\x96\x81 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 \xe2\x80\x82x",
      std::string("bytes \x00\x01\xff\xfe\x80\xc0 end", 16),
      "<s></s><unk><|endoftext|>12345678901234",
  };
  AMLQ_FUZZ_CHECK(tok.vocab_size() > 0, "empty vocabulary");
  AMLQ_FUZZ_CHECK(tok.bos_id() < tok.vocab_size() && tok.eos_id() < tok.vocab_size(), "bos {} eos {} vocab {}",
                  tok.bos_id(), tok.eos_id(), tok.vocab_size());
  auto check = [&](std::string_view text) {
    for (const bool special : {false, true}) {
      fuzz::tolerate(ErrorKind::Input, [&] {  // e.g. the text needs a byte token the vocabulary lacks
        const auto ids = tok.encode(text, special);
        for (const int32_t id : ids)
          AMLQ_FUZZ_CHECK(id >= 0 && id < tok.vocab_size(), "id {} outside vocabulary {}", id, tok.vocab_size());
        (void)tok.decode(ids);
      });
    }
  };
  for (const auto& s : samples) check(s);
  check(own_bytes.substr(0, 4096));
  (void)tok.description();
}

}  // namespace amlq::fuzz
