#!/usr/bin/env python3
"""Three random Llama-shaped bf16 models (~1.1 GB each) for the merge benchmark (numpy only).

  /usr/bin/python3 bench/merge_make_models.py OUT_DIR          # writes OUT_DIR/{base,m1,m2}

Shape: hidden 2048, 10 layers, 32 heads (4 kv heads), intermediate 5632, vocab 32000, untied:
571M parameters = 1.14 GB in bf16, one shard each. m1 and m2 are base + small random deltas (as
fine-tunes are), so TIES/DARE see realistic task vectors. Tensors are generated and written one at a
time (memory ~ one tensor).
"""
import json
import os
import struct
import sys

import numpy as np

H, NH, NKV, I = 2048, 32, 4, 5632
# A smaller set for a loaded machine: EVOMERGE_MERGE_BENCH_LAYERS=2 EVOMERGE_MERGE_BENCH_VOCAB=8000
# gives 3 x 242 MB (docs/benchmarks.md, merge section).
L = int(os.environ.get("EVOMERGE_MERGE_BENCH_LAYERS", "10"))
V = int(os.environ.get("EVOMERGE_MERGE_BENCH_VOCAB", "32000"))
HD = H // NH


def shapes():
    out = [("model.embed_tokens.weight", (V, H))]
    for i in range(L):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (H,)),
                (p + "self_attn.q_proj.weight", (NH * HD, H)),
                (p + "self_attn.k_proj.weight", (NKV * HD, H)),
                (p + "self_attn.v_proj.weight", (NKV * HD, H)),
                (p + "self_attn.o_proj.weight", (H, NH * HD)),
                (p + "post_attention_layernorm.weight", (H,)),
                (p + "mlp.gate_proj.weight", (I, H)),
                (p + "mlp.up_proj.weight", (I, H)),
                (p + "mlp.down_proj.weight", (H, I))]
    out += [("model.norm.weight", (H,)), ("lm_head.weight", (V, H))]
    return out


def to_bf16(x):
    # round to nearest even, as torch does
    b = x.astype(np.float32).view(np.uint32)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return b.astype(np.uint16)


def write_model(path, seed_base, seed_delta):
    os.makedirs(path, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": V, "hidden_size": H,
           "intermediate_size": I, "num_hidden_layers": L, "num_attention_heads": NH, "num_key_value_heads": NKV,
           "rms_norm_eps": 1e-5, "max_position_embeddings": 2048, "tie_word_embeddings": False,
           "torch_dtype": "bfloat16", "rope_theta": 10000.0}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    header, off = {}, 0
    for name, shape in shapes():
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {"format": "pt"}
    hj = json.dumps(header).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(os.path.join(path, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for k, (name, shape) in enumerate(shapes()):
            rb = np.random.default_rng(seed_base * 1000 + k)
            if name.endswith("norm.weight"):
                x = np.ones(shape, np.float32)
            else:
                x = rb.standard_normal(shape, dtype=np.float32) * 0.02
            if seed_delta is not None:
                rd = np.random.default_rng(seed_delta * 1000 + k)
                x += rd.standard_normal(shape, dtype=np.float32) * 0.002
            f.write(to_bf16(x).tobytes())


if __name__ == "__main__":
    out = sys.argv[1]
    for name, delta in (("base", None), ("m1", 1), ("m2", 2)):
        if not os.path.exists(os.path.join(out, name, "model.safetensors")):
            write_model(os.path.join(out, name), 7, delta)
            print("wrote", os.path.join(out, name), flush=True)
