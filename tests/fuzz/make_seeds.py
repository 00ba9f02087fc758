#!/usr/bin/env python3
"""Writes the fuzz seed corpora of tests/fuzz/corpus/<target>/seed-* and the tiny
synthetic model tests/fuzz/make_seeds.sh quantizes for the HDF5 targets.

Every seed is synthetic and small (no file of ../shared is copied): the fuzzer
starts from valid inputs of each format and mutates them.  Usage:

    tests/fuzz/make_seeds.py CORPUS_DIR [MODEL_DIR]

Deterministic: running it twice writes the same bytes.
"""
import json
import os
import random
import struct
import sys

RNG = random.Random(14)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)


def seeds(corpus, target, items):
    for name, data in items:
        write(os.path.join(corpus, target, "seed-" + name), data)


# ---- safetensors ----------------------------------------------------------------

def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    data = b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def rand_f32(n, scale=0.1):
    return f32([RNG.gauss(0, scale) for _ in range(n)])


# ---- tokenizers -----------------------------------------------------------------

def bytes_to_unicode():
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    mapping, extra = {}, 256
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(extra)
            extra += 1
    return mapping


GPT2_REGEX = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                r"""\s*[\r\n]+|\s+(?!\S)|\s+""")


def byte_level_tokenizer(split_regex=None, merges_as_pairs=False):
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = []
    for left, right in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"),
                        ("Ġ", "w"), ("o", "r"), ("Ġw", "or"), ("l", "d"), ("Ġwor", "ld")]:
        vocab.setdefault(left + right, len(vocab))
        merges.append([left, right] if merges_as_pairs else left + " " + right)
    endoftext = len(vocab)
    pre = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    if split_regex:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split_regex}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    return {
        "version": "1.0",
        "added_tokens": [{"id": endoftext, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": pre,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [], "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>",
                                                                           "ids": [endoftext],
                                                                           "tokens": ["<|endoftext|>"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def sentencepiece_tokenizer(metaspace=False):
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece in ["▁", "e", "t", "h", "a", "o", "n", "l", "d", "w", "r", "i", "s"]:
        vocab[piece] = len(vocab)
    merges = []
    for left, right in [("▁", "t"), ("h", "e"), ("▁t", "he"), ("i", "n"), ("▁", "a"), ("e", "r"), ("o", "n"),
                        ("▁", "w"), ("o", "r"), ("▁w", "or"), ("l", "d"), ("▁wor", "ld")]:
        vocab.setdefault(left + right, len(vocab))
        merges.append(left + " " + right)
    tok = {
        "version": "1.0",
        "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for c, i in [("<unk>", 0), ("<s>", 1), ("</s>", 2)]],
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    if metaspace:
        tok["normalizer"] = None
        tok["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
        tok["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    else:
        tok["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        tok["pre_tokenizer"] = None
        tok["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    return tok


def llama2c_tokenizer(pieces):
    """pieces: list of (score, bytes)."""
    out = struct.pack("<i", max(len(p) for _, p in pieces))
    for score, piece in pieces:
        out += struct.pack("<fi", score, len(piece)) + piece
    return out


def llama2c_pieces(extra_words):
    pieces = [(0.0, b"<unk>"), (0.0, b"\n<s>\n"), (0.0, b"\n</s>\n")]
    pieces += [(0.0, b"<0x%02X>" % b) for b in range(256)]
    score = -1.0
    for w in extra_words:
        pieces.append((score, w.encode()))
        score -= 1.0
    return pieces


LLAMA2C_WORDS = [" ", "e", "t", "a", "o", "h", "n", "s", " t", "he", " the", "in", " a", "er", "on", " w", "or",
                 " wor", "ld", " world", "Hello", "é", "日本"]


# ---- datasets -------------------------------------------------------------------

def npy(descr, values, fmt, version=1):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }" % (descr, len(values))
    pre = 10 if version == 1 else 12
    header += " " * (-(pre + len(header) + 1) % 64) + "\n"
    magic = b"\x93NUMPY" + bytes([version, 0])
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return magic + size + header.encode() + struct.pack("<%d%s" % (len(values), fmt), *values)


# ---- the synthetic model for the HDF5 seeds ---------------------------------------

def synthetic_model(model_dir, arch="llama"):
    hidden, inter, layers, heads, kv, vocab = 16, 24, 1, 2, 1, 64
    head_dim = hidden // heads
    config = {"architectures": ["LlamaForCausalLM" if arch == "llama" else "Qwen2ForCausalLM"],
              "model_type": arch, "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers,
              "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": head_dim, "vocab_size": vocab,
              "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
              "tie_word_embeddings": arch == "llama", "bos_token_id": 1, "eos_token_id": 2}
    embedding = [RNG.gauss(0, 0.5) for _ in range(vocab * hidden)]
    bf16 = struct.pack("<%dH" % len(embedding), *[struct.unpack("<I", struct.pack("<f", x))[0] >> 16 for x in embedding])
    tensors = [("model.embed_tokens.weight", "BF16", [vocab, hidden], bf16),
               ("model.norm.weight", "F32", [hidden], f32([1.0] * hidden))]
    if arch != "llama":
        tensors.append(("lm_head.weight", "F32", [vocab, hidden], rand_f32(vocab * hidden, 0.5)))
    shapes = {"self_attn.q_proj": (heads * head_dim, hidden), "self_attn.k_proj": (kv * head_dim, hidden),
              "self_attn.v_proj": (kv * head_dim, hidden), "self_attn.o_proj": (hidden, heads * head_dim),
              "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden), "mlp.down_proj": (hidden, inter)}
    for layer in range(layers):
        p = "model.layers.%d." % layer
        tensors.append((p + "input_layernorm.weight", "F32", [hidden], f32([1.0] * hidden)))
        tensors.append((p + "post_attention_layernorm.weight", "F32", [hidden], f32([1.0] * hidden)))
        for name, (rows, cols) in shapes.items():
            tensors.append((p + name + ".weight", "F32", [rows, cols], rand_f32(rows * cols)))
            if arch == "qwen2" and name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                tensors.append((p + name + ".bias", "F32", [rows], rand_f32(rows)))
    write(os.path.join(model_dir, "config.json"), json.dumps(config, indent=2) + "\n")
    write(os.path.join(model_dir, "model.safetensors"), safetensors(tensors, {"format": "pt"}))
    ids = [RNG.randrange(3, vocab) for _ in range(4096)]
    write(os.path.join(model_dir, "calib.u16"), struct.pack("<%dH" % len(ids), *ids))


def main():
    corpus = sys.argv[1]
    # safetensors
    seeds(corpus, "safetensors", [
        ("f32", safetensors([("a", "F32", [2, 3], f32([1, 2, 3, 4, 5, 6]))], {"format": "pt"})),
        ("dtypes", safetensors([
            ("x.f16", "F16", [2], struct.pack("<2H", 0x3C00, 0xC000)),
            ("x.bf16", "BF16", [3, 1], struct.pack("<3H", 0x3F80, 0x4000, 0xBF80)),
            ("x.i8", "I8", [3], struct.pack("<3b", -128, 0, 127)),
            ("x.u8", "U8", [1], b"\xff"),
            ("x.i32", "I32", [2], struct.pack("<2i", -7, 1 << 20)),
            ("x.i64", "I64", [1], struct.pack("<q", -1)),
            ("x.f64", "F64", [1], struct.pack("<d", 0.5)),
            ("x.u16", "U16", [1], struct.pack("<H", 7)),
            ("empty", "F32", [0, 4], b""),
            ("scalar", "F32", [], f32([3.0]))])),
        ("weights", safetensors([("model.layers.0.mlp.down_proj.weight", "F32", [4, 8], rand_f32(32)),
                                 ("model.norm.weight", "BF16", [4], struct.pack("<4H", *[0x3F80] * 4))])),
    ])
    seeds(corpus, "safetensors_index", [
        ("index", json.dumps({"metadata": {"total_size": 1234},
                              "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                                             "model.norm.weight": "model-00002-of-00002.safetensors",
                                             "lm_head.weight": "model-00002-of-00002.safetensors"}}, indent=2)),
    ])
    llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
             "intermediate_size": 172, "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4,
             "head_dim": 8, "vocab_size": 512, "max_position_embeddings": 512, "rms_norm_eps": 1e-05,
             "rope_theta": 10000.0, "rope_scaling": None, "hidden_act": "silu", "tie_word_embeddings": True,
             "attention_bias": False, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
    llama3 = dict(llama, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, eos_token_id=[128001, 128008],
                  rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192, "rope_type": "llama3"})
    del llama3["head_dim"]
    mistral = dict(llama, model_type="mistral", rope_scaling={"type": "linear", "factor": 2.0})
    qwen2 = dict(llama, model_type="qwen2", tie_word_embeddings=False)
    del qwen2["attention_bias"]
    seeds(corpus, "config_json", [(n, json.dumps(c, indent=2)) for n, c in
                                  [("llama", llama), ("llama3", llama3), ("mistral", mistral), ("qwen2", qwen2)]])
    seeds(corpus, "tokenizer_hf_bytelevel", [
        ("gpt2.json", json.dumps(byte_level_tokenizer(), ensure_ascii=False)),
        ("llama3-split.json", json.dumps(byte_level_tokenizer(LLAMA3_REGEX, merges_as_pairs=True),
                                         ensure_ascii=False)),
        ("gpt2-split.json", json.dumps(byte_level_tokenizer(GPT2_REGEX), ensure_ascii=True)),
    ])
    seeds(corpus, "tokenizer_hf_sentencepiece", [
        ("llama2.json", json.dumps(sentencepiece_tokenizer(), ensure_ascii=False)),
        ("metaspace.json", json.dumps(sentencepiece_tokenizer(metaspace=True), ensure_ascii=False)),
    ])
    seeds(corpus, "tokenizer_llama2c", [
        ("tok.bin", llama2c_tokenizer(llama2c_pieces(LLAMA2C_WORDS))),
        ("tiny.bin", llama2c_tokenizer(llama2c_pieces([]))),
    ])
    ids = [RNG.randrange(0, 280) for _ in range(64)]
    sample = 0x15  # dataset byte 1: 6 samples of 3 ids, consecutive windows
    seeds(corpus, "dataset", [
        ("u16", bytes([0, sample]) + struct.pack("<64H", *ids)),
        ("u32", bytes([1, sample | 128]) + struct.pack("<64I", *ids)),
        ("npy-u2", bytes([2, sample]) + npy("<u2", ids, "H")),
        ("npy-i8-v2", bytes([2, sample | 128]) + npy("<i8", ids, "q", version=2)),
        ("npy-i4", bytes([2, 3]) + npy("<i4", ids, "i")),
        ("text", bytes([3, sample]) + "Hello world, the wording: 日本 é.\n".encode() * 3),
    ])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    recipes = []
    for name in sorted(os.listdir(os.path.join(root, "configs", "recipes"))):
        with open(os.path.join(root, "configs", "recipes", name), encoding="utf-8") as f:
            recipes.append((name, f.read()))
    recipes.append(("variants.toml", 'name = "v"\nranks = [0, 4]  # c\nbits = [3]\ngroups = [0, 128]\n'
                                     'symmetric = true\nact_order = true\nstatic_groups = true\n'
                                     "mixes = ['50%4b-g64+50%2b-row-sym', \"10%8b-g32+90%3b-g64-noact\"]\n"))
    recipes.append(("arrays.toml", "ranks = [\n  0,\n  1_024, # x\n]\nmixes = [\"4b-g64\"]\n"))
    seeds(corpus, "recipe_toml", recipes)
    configs = []
    for name in sorted(os.listdir(os.path.join(root, "configs", "examples"))):
        with open(os.path.join(root, "configs", "examples", name), encoding="utf-8") as f:
            configs.append((name, f.read()))
    configs.append(("inspect.toml", 'log-level = "warn"\nthreads = 2\n[inspect]\nmodel = "m.h5"\nverify = true\n'))
    configs.append(("eval.toml", '[eval]\nmodel = "x"\ndata = "d.u16"\nseqlen = 64\nmax-windows = 3\njson = true\n'))
    seeds(corpus, "cli_config", configs)
    table = [{"name": "model.layers.0.self_attn.q_proj", "rows": 64, "cols": 64,
              "candidates": [["4b-g64", 0, 4.25, 0.01], ["3b-g64", 0, 3.25, 0.05], ["3b-g64", 8, 7.25, 0.02],
                             ["25%4b-g64+75%3b-g64", 0, 3.5, 0.03]]},
             {"name": "model.layers.0.mlp.down_proj", "rows": 64, "cols": 172,
              "candidates": [["4b-g32-sym", 0, 4.5, 0.008], ["2b-row-noact", 0, 2.0, 0.4],
                             ["3b-g32-static", 16, 5.6, 0.02]]}]
    # The checkpoint envelope of pipeline/json_checkpoint.cc: kind, input hash, and
    # the FNV-1a 64 (core/hash.h: the length as 8 little-endian bytes, then the
    # text) of the payload as nlohmann's dump() writes it (compact, sorted keys).
    def fnv1a64(text):
        h = 0xcbf29ce484222325
        data = text.encode()
        for b in len(data).to_bytes(8, "little") + data:
            h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        return f"{h:016x}"
    payload_text = json.dumps(table, separators=(",", ":"), sort_keys=True)
    seeds(corpus, "measure_json", [("measure.json", json.dumps({
        "format": "amlq-measurements", "input_hash": "fuzz-hash", "content_hash": fnv1a64(payload_text),
        "payload": table}, indent=1))])
    seeds(corpus, "plan_json", [("plan.json", json.dumps({"input_hash": "0123456789abcdef", "plan": {
        "method": "minmax", "target_bpw": 3.0, "achieved_bpw": 2.9, "max_eps": 0.05, "sum_eps": 0.06,
        "threshold": 0.05, "choice": [1, 0]}}, indent=1))])
    # A --search plan:<file> file: a quantize report's "layers" (extra keys ignored).
    seeds(corpus, "listed_plan_json", [("report.json", json.dumps({"method": "minsum", "layers": [
        {"name": "model.layers.0.self_attn.q_proj", "spec": "3b-g64", "rank": 0, "bpw": 3.25},
        {"name": "model.layers.0.mlp.down_proj", "spec": "25%4b-g64+75%3b-g64", "rank": 8},
        {"name": "model.layers.0.self_attn.v_proj", "spec": "4b-g32-sym-noact"}]}, indent=1))])
    # Edit scripts for the structured HDF5 targets (hdf5_edits.cc): byte 0 of
    # model_h5 picks the base file; the rest are edits.
    scripts = [("intact", b""),
               ("attr", bytes([0, 3, 0, 2, 0, 0, 1, 7, 0, 0, 0])),
               ("poke", bytes([4, 9, 0, 3, 5, 0, 255, 1, 0, 9])),
               ("reshape", bytes([3, 12, 0, 0, 2, 3, 5])),
               ("delete", bytes([2, 20, 0])),
               ("copy", bytes([5, 4, 0, 3, 97, 98, 99]))]
    seeds(corpus, "calibration_h5", scripts)
    seeds(corpus, "model_h5", [("fp16-" + n, b"\x00" + s) for n, s in scripts] +
          [("int8-" + n, b"\x01" + s) for n, s in scripts])
    if len(sys.argv) > 2:
        synthetic_model(os.path.join(sys.argv[2], "llama"), "llama")
        synthetic_model(os.path.join(sys.argv[2], "qwen2"), "qwen2")


if __name__ == "__main__":
    main()
