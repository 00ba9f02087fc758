// llama2.c tokenizer.bin / tok*.bin.
#include "io/tokenizer/formats.h"
#include "tests/fuzz/targets/tokenizer_common.h"

namespace amlq {

AMLQ_FUZZ_TARGET(tokenizer_llama2c, ErrorKind::Input) {
  const auto tok = parse_llama2c_tokenizer(fuzz::text(input), "tok512.bin");
  fuzz::exercise_tokenizer(*tok, fuzz::text(input));
}

}  // namespace amlq
