#!/usr/bin/env python3
"""Write a bench model (a Llama-shaped HF folder from bench_infer) as a GGUF file for llama.cpp.

Only for measuring llama.cpp side by side with evomerge on the same weights (docs/benchmarks.md).
llama.cpp's own convert_hf_to_gguf.py needs `transformers`, which Debian 12 does not package; this
needs only numpy and the `gguf` Python package that ships inside a llama.cpp checkout:

    PYTHONPATH=$LLAMA_CPP/gguf-py python3 bench/llamacpp_gguf.py $TMPDIR/evomerge_bench_llama1b out.gguf

The matrices are copied bit for bit (bf16 stays bf16); 1-D norm weights are widened to f32
exactly, as ggml needs; the file has no vocabulary
(tokenizer model "none", which llama.cpp accepts for benchmarks with random token ids).
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np
import gguf  # from $LLAMA_CPP/gguf-py

DTYPES = {"BF16": (np.uint16, gguf.GGMLQuantizationType.BF16),
          "F32": (np.float32, gguf.GGMLQuantizationType.F32),
          "F16": (np.float16, gguf.GGMLQuantizationType.F16)}

LAYER_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
               "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
               "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
               "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def read_safetensors(path):
    """name -> (numpy array of raw elements [rows, cols], GGML type)."""
    raw = Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    base = 8 + header_len
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        np_type, ggml_type = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        array = np.frombuffer(raw, dtype=np_type, count=(end - begin) // np.dtype(np_type).itemsize,
                              offset=base + begin).reshape(info["shape"])
        out[name] = (array, ggml_type)
    return out


def rope_rows_to_interleaved(w, heads):
    """HF Llama stores each head's q/k rows as [x_0..x_{d/2-1}, y_0..y_{d/2-1}] (rotate-half RoPE);
    llama.cpp's llama graph rotates adjacent pairs (x_0, y_0, x_1, y_1, ...). Reorder the rows of
    w [heads * d, hidden] so that row 2i of a head is HF row i and row 2i+1 is HF row d/2 + i."""
    d = w.shape[0] // heads
    return w.reshape(heads, 2, d // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main(folder, out_path):
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    writer = gguf.GGUFWriter(out_path, "llama")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(config.get("rope_theta", 10000.0))
    writer.add_rope_dimension_count(config["hidden_size"] // heads)
    writer.add_vocab_size(config["vocab_size"])
    writer.add_tokenizer_model("none")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)

    tensors = {}
    for shard in sorted(folder.glob("*.safetensors")):
        tensors.update(read_safetensors(shard))
    if config.get("tie_word_embeddings") and "lm_head.weight" not in tensors:
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"]
    for name, (array, ggml_type) in tensors.items():
        if name == "model.embed_tokens.weight":
            gguf_name = "token_embd.weight"
        elif name == "model.norm.weight":
            gguf_name = "output_norm.weight"
        elif name == "lm_head.weight":
            gguf_name = "output.weight"
        else:
            parts = name.split(".")  # model.layers.N.<module...>.weight
            assert parts[0] == "model" and parts[1] == "layers", name
            module = ".".join(parts[3:-1])
            gguf_name = f"blk.{parts[2]}.{LAYER_NAMES[module]}.weight"
            if module == "self_attn.q_proj":
                array = rope_rows_to_interleaved(array, heads)
            elif module == "self_attn.k_proj":
                array = rope_rows_to_interleaved(array, kv_heads)
        if array.ndim == 1 and ggml_type == gguf.GGMLQuantizationType.BF16:
            # ggml's CPU ops multiply by norm weights only in f32 (as llama.cpp's converter stores
            # them): widen bf16 exactly (its 16 bits are the top half of the f32).
            array = (array.astype(np.uint32) << 16).view(np.float32)
            ggml_type = gguf.GGMLQuantizationType.F32
        # raw_shape is numpy order ([rows, cols]); gguf-py reverses it into GGML order.
        writer.add_tensor(gguf_name, np.ascontiguousarray(array), raw_shape=array.shape,
                          raw_dtype=ggml_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: llamacpp_gguf.py HF_FOLDER OUT.gguf")
    main(sys.argv[1], sys.argv[2])
