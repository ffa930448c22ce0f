#!/usr/bin/env python3
"""The PyTorch peer for bench/merge_bench.cpp: the same linear / ties / dare_ties merges of the three
generated models, written the straightforward way a Python user would (Debian's python3-torch 1.13;
the `safetensors` package is not installed, so files are read and written with a few lines of
struct/json, the same layout as safetensors.torch.load_file / save_file).

  /usr/bin/python3 bench/merge_torch.py DIR METHOD [THREADS]    # DIR holds base/, m1/, m2/

Prints: METHOD wall seconds (load + merge + save), as one line "torch METHOD SECONDS".
Math as mergekit: f32 compute, TIES top-k magnitude (density 0.5), sign election on the weighted
sum, normalised disjoint mean; DARE: Bernoulli(density) with L1 rescale, sign consensus, no
normalisation.
"""
import json
import os
import struct
import sys
import time

import torch

DT = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}


def load(path):
    with open(os.path.join(path, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = bytearray(f.read())
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = torch.frombuffer(data, dtype=DT[info["dtype"]], count=(e - b) // 2, offset=b).reshape(info["shape"])
    return out


def save(tensors, path):
    os.makedirs(path, exist_ok=True)
    header, off = {}, 0
    for name, t in tensors.items():
        n = t.numel() * t.element_size()
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [off, off + n]}
        off += n
    hj = json.dumps(header).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(os.path.join(path, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for t in tensors.values():
            f.write(t.contiguous().view(torch.int16).numpy().tobytes())


def magnitude(d, density):
    k = int(density * d.numel())
    if k <= 0:
        return torch.zeros_like(d)
    thr = d.abs().flatten().kthvalue(d.numel() - k + 1).values
    return d * (d.abs() >= thr)


def dare(d, density):
    mask = torch.bernoulli(torch.full_like(d, density))
    m = d * mask
    l1, l1m = d.abs().sum(), m.abs().sum()
    return m * (l1 / l1m) if l1 > 1e-7 and l1m > 1e-7 else m


def merge(method, base, models, weights, density=0.5):
    out = {}
    for name, b in base.items():
        b32 = b.float()
        if method == "linear":
            ts = [b32] + [m[name].float() for m in models]
            ws = [0.4, 0.3, 0.3]
            r = sum(w * t for w, t in zip(ws, ts)) / sum(ws)
        else:
            ds = [m[name].float() - b32 for m in models]
            ds = [magnitude(d, density) if method == "ties" else dare(d, density) for d in ds]
            wd = torch.stack([w * d for w, d in zip(weights, ds)])
            sign = torch.where(wd.sum(0) >= 0, 1.0, -1.0)
            agree = (torch.sign(wd) == sign)
            delta = (wd * agree).sum(0)
            if method == "ties":
                den = (torch.tensor(weights).view(-1, *([1] * b.dim())) * agree).sum(0)
                delta = delta / torch.where(den == 0, torch.ones_like(den), den)
            r = b32 + delta
        out[name] = r.to(torch.bfloat16)
    return out


if __name__ == "__main__":
    d, method = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3:
        torch.set_num_threads(int(sys.argv[3]))
    torch.manual_seed(0)
    t0 = time.time()
    base = load(os.path.join(d, "base"))
    models = [load(os.path.join(d, m)) for m in ("m1", "m2")]
    merged = merge(method, base, models, [0.5, 0.5])
    save(merged, os.path.join(d, "out_torch_" + method))
    print(f"torch {method} {time.time() - t0:.2f}", flush=True)
