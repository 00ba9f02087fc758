#pragma once
// The GPTQ checkpoint format that AutoGPTQ, GPTQModel, transformers and vLLM
// load, declared once: the exporter (gptq_export.cc) and the reader
// (gptq_reader.cc) use these declarations and nothing else. docs/EXPORT.md
// describes the format for people.
//
// A quantized linear `<module>` with W of out x in (y = W x) is four tensors:
//   <module>.qweight  I32 [packed_words(in, b), out]   codes, packed along the INPUT
//                     dimension: column o of qweight is one little-endian bit
//                     stream (word w = qweight[w, o]), the code of input i at bits
//                     [i*b, i*b + b). For b = 2, 4, 8 that is 32/b codes per word;
//                     for b = 3 it is AutoGPTQ's 10 | 1 | 10 | 1 | 10 layout of 32
//                     codes in 3 words (codes 10 and 21 straddle two words).
//   <module>.qzeros   I32 [groups, packed_words(out, b)]  zero points, packed the same
//                     way along the OUTPUT dimension (row g is one stream), stored
//                     as zero - kZeroOffset ("zero-minus-one", checkpoint_format
//                     "gptq"; "gptq_v2" stores the zero itself).
//   <module>.scales   F16 [groups, out]
//   <module>.g_idx    I32 [in]  group of each input column: i / G in plain order;
//                     act-order (desc_act) checkpoints store perm^-1[i] / G.
//   W[o, i] = scales[g, o] * (q[i, o] - zero[g, o]),   g = g_idx[i],   groups = ceil(in / G)
//
// Readers add kZeroOffset back per field without wrapping, so a zero point of 0
// (stored field 2^b - 1 after masking) reads back as 2^b: it is not expressible.
// Kernels want in and out to be multiples of 32; the stream layout above (and
// the ceil in packed_words, as GPTQModel allocates) extends to other sizes,
// which amlq writes and reads but most kernels refuse.
#include <array>
#include <cstdint>
#include <string_view>

namespace amlq::gptq {

inline constexpr int kWordBits = 32;
inline constexpr std::array<int, 4> kSupportedBits = {2, 3, 4, 8};
inline constexpr int kZeroOffsetV1 = 1;  // checkpoint_format "gptq" (what every loader reads)
inline constexpr int kZeroOffsetV2 = 0;  // checkpoint_format "gptq_v2" (GPTQModel's internal format)
inline constexpr int kWholeRowGroup = -1;  // group_size of one group per row

inline constexpr std::string_view kQuantMethod = "gptq";
inline constexpr std::string_view kCheckpointFormatV1 = "gptq";
inline constexpr std::string_view kCheckpointFormatV2 = "gptq_v2";
inline constexpr std::string_view kPackDtype = "int32";
inline constexpr std::string_view kQuantizeConfigFile = "quantize_config.json";
inline constexpr std::string_view kQweight = "qweight";
inline constexpr std::string_view kQzeros = "qzeros";
inline constexpr std::string_view kScales = "scales";
inline constexpr std::string_view kGroupIndex = "g_idx";
// GPTQModel's per-module override rules: "+:<regex>" (or a bare regex) overrides
// the listed keys, "-:<regex>" leaves the module unquantized; the first rule whose
// regex matches the start of the module name wins (Python re.match).
inline constexpr std::string_view kPositiveRule = "+:";
inline constexpr std::string_view kNegativeRule = "-:";

constexpr bool supported_bits(int bits) {
  for (int b : kSupportedBits)
    if (b == bits) return true;
  return false;
}

// Words of one packed stream of n codes (qweight rows for n = in, qzeros columns for n = out).
constexpr int64_t packed_words(int64_t n, int bits) { return (n * bits + kWordBits - 1) / kWordBits; }

// Groups per row for a group_size (kWholeRowGroup: one).
constexpr int64_t group_count(int64_t in, int group_size) {
  return group_size == kWholeRowGroup ? 1 : (in + group_size - 1) / group_size;
}

struct CodePosition {
  int64_t word = 0;
  int shift = 0;
  bool straddles = false;  // the code continues in the low bits of word + 1
};

constexpr CodePosition code_position(int64_t index, int bits) {
  const int64_t bit = index * bits;
  const int shift = static_cast<int>(bit % kWordBits);
  return {bit / kWordBits, shift, shift + bits > kWordBits};
}

// Code `index` of a stream whose consecutive words are `stride` uint32 apart
// (qweight: stride = out; a qzeros row: stride = 1).
inline uint32_t get_code(const uint32_t* words, int64_t stride, int64_t index, int bits) {
  const CodePosition p = code_position(index, bits);
  uint32_t value = words[p.word * stride] >> p.shift;
  if (p.straddles) value |= words[(p.word + 1) * stride] << (kWordBits - p.shift);
  return value & ((1u << bits) - 1u);
}

// Writes code `index` into a zero-initialized stream.
inline void put_code(uint32_t* words, int64_t stride, int64_t index, int bits, uint32_t code) {
  const CodePosition p = code_position(index, bits);
  words[p.word * stride] |= code << p.shift;
  if (p.straddles) words[(p.word + 1) * stride] |= code >> (kWordBits - p.shift);
}

static_assert(kWordBits == 32, "qweight and qzeros are int32 tensors");
static_assert(packed_words(4096, 4) == 512 && packed_words(4096, 8) == 1024 && packed_words(4096, 2) == 256);
static_assert(packed_words(32, 3) == 3, "3-bit: 32 codes in 3 words");
static_assert(group_count(4096, 128) == 32 && group_count(172, 64) == 3 && group_count(172, kWholeRowGroup) == 1);
// 2/4/8 bits: 32/b codes per word, code k of a word at bits k*b.
static_assert(code_position(9, 4).word == 1 && code_position(9, 4).shift == 4 && !code_position(9, 4).straddles);
static_assert(code_position(5, 8).word == 1 && code_position(5, 8).shift == 8);
static_assert(code_position(17, 2).word == 1 && code_position(17, 2).shift == 2);
// 3 bits, AutoGPTQ's pattern: codes 0-9 at bits 3k of word 0; code 10 in bits 30-31
// plus bit 0 of word 1; codes 11-20 at bits 3(k-11)+1 of word 1; code 21 in bit 31
// plus bits 0-1 of word 2; codes 22-31 at bits 3(k-22)+2 of word 2.
static_assert(code_position(9, 3).word == 0 && code_position(9, 3).shift == 27);
static_assert(code_position(10, 3).word == 0 && code_position(10, 3).shift == 30 && code_position(10, 3).straddles);
static_assert(code_position(11, 3).word == 1 && code_position(11, 3).shift == 1);
static_assert(code_position(21, 3).word == 1 && code_position(21, 3).shift == 31 && code_position(21, 3).straddles);
static_assert(code_position(22, 3).word == 2 && code_position(22, 3).shift == 2);
static_assert(code_position(31, 3).word == 2 && code_position(31, 3).shift == 29 && !code_position(31, 3).straddles);
static_assert(code_position(32, 3).word == 3 && code_position(32, 3).shift == 0, "the next 32 codes start a fresh word");

}  // namespace amlq::gptq
