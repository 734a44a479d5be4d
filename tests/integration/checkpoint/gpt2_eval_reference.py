#!/usr/bin/python3
"""Independent reference for `conveyor eval`: a plain numpy GPT-2 forward pass over a
checkpoint read with h5py, scoring the first K non-overlapping windows of a byte file.

usage: gpt2_eval_reference.py STEP_DIR DATA_FILE K    -> prints {"loss", "windows", "tokens"}
       gpt2_eval_reference.py --hf HF_DIR DATA_FILE K  (a Hugging Face GPT-2 folder instead:
       config.json and model.safetensors, read here by the documented formats, not by conveyor)
Exit 77 when numpy or h5py is missing (the caller skips).

Model (GPT-2, as in model/chunk.cc): tanh GELU, LayerNorm eps 1e-5, causal attention with
qkv rows ordered q, k, v and heads as contiguous slices, linear weights stored [out, in],
logits = ln_f(x) @ wte^T (tied). Computed in float64, so it also bounds conveyor's fp32 error.
"""
import glob
import json
import os
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"missing python module: {e}", file=sys.stderr)
    sys.exit(77)


def load_params(step_dir):
    """Every /params/<name> from every shard; a parameter held by two stages (the tied wte)
    is taken from the lowest stage, as conveyor does, and the copies must agree."""
    params = {}
    for path in sorted(glob.glob(os.path.join(step_dir, "stage_*.h5"))):
        with h5py.File(path, "r") as f:
            for name, ds in f["params"].items():
                value = ds[()].astype(np.float64)
                if name in params:
                    assert np.array_equal(params[name], value), f"copies of {name} differ"
                else:
                    params[name] = value
    return params


def read_safetensors(path):
    """Every tensor of a safetensors file, by its documented layout: an 8-byte little-endian
    header length, a JSON header of {name: {dtype, shape, data_offsets}}, then the data."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: {info['dtype']}"
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
    return out


def load_hf(hf_dir):
    """GPT2LMHeadModel's names and layouts (Conv1D weights [in, out]) as this file's model
    names them ([out, in]); the head is tied to wte. Returns (params, cfg)."""
    hf = json.load(open(os.path.join(hf_dir, "config.json")))
    cfg = {"layers": hf["n_layer"], "dim": hf["n_embd"], "heads": hf["n_head"],
           "seq": hf["n_positions"], "vocab": hf["vocab_size"]}
    assert hf["activation_function"] == "gelu_new" and hf["tie_word_embeddings"]
    t = read_safetensors(os.path.join(hf_dir, "model.safetensors"))
    p = {"wte.weight": t.pop("transformer.wte.weight"),
         "wpe.weight": t.pop("transformer.wpe.weight"),
         "ln_f.weight": t.pop("transformer.ln_f.weight"),
         "ln_f.bias": t.pop("transformer.ln_f.bias")}
    ours = {"ln_1": "ln1", "ln_2": "ln2", "attn.c_attn": "attn.qkv", "attn.c_proj": "attn.proj",
            "mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj"}
    for layer in range(cfg["layers"]):
        for theirs, mine in ours.items():
            for kind in ("weight", "bias"):
                value = t.pop(f"transformer.h.{layer}.{theirs}.{kind}")
                if kind == "weight" and not theirs.startswith("ln"):
                    value = value.T  # Conv1D stores [in, out]
                p[f"layers.{layer:03d}.{mine}.{kind}"] = value
    assert not t, f"unexpected tensors: {sorted(t)}"
    return {k: v.astype(np.float64) for k, v in p.items()}, cfg


def layernorm(x, w, b):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def forward_loss(p, cfg, tokens, targets):
    T, C, H = len(tokens), cfg["dim"], cfg["heads"]
    hs = C // H
    x = p["wte.weight"][tokens] + p["wpe.weight"][:T]
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    for layer in range(cfg["layers"]):
        q = f"layers.{layer:03d}."
        h = layernorm(x, p[q + "ln1.weight"], p[q + "ln1.bias"])
        qkv = h @ p[q + "attn.qkv.weight"].T + p[q + "attn.qkv.bias"]
        Q, K, V = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
        out = np.empty((T, C))
        for head in range(H):
            sl = slice(head * hs, (head + 1) * hs)
            att = Q[:, sl] @ K[:, sl].T / np.sqrt(hs)
            att[mask] = -np.inf
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            out[:, sl] = att @ V[:, sl]
        x = x + out @ p[q + "attn.proj.weight"].T + p[q + "attn.proj.bias"]
        h = layernorm(x, p[q + "ln2.weight"], p[q + "ln2.bias"])
        h = gelu(h @ p[q + "mlp.fc.weight"].T + p[q + "mlp.fc.bias"])
        x = x + h @ p[q + "mlp.proj.weight"].T + p[q + "mlp.proj.bias"]
    x = layernorm(x, p["ln_f.weight"], p["ln_f.bias"])
    logits = x @ p["wte.weight"].T
    m = logits.max(-1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
    return -logp[np.arange(T), targets].sum()


def main():
    args = sys.argv[1:]
    if args[0] == "--hf":
        p, cfg = load_hf(args[1])
        args = args[2:]
    else:
        with open(os.path.join(args[0], "manifest.json")) as f:
            cfg = json.load(f)["config"]["model"]
        p = load_params(args[0])
        args = args[1:]
    data_file, k = args[0], int(args[1])
    assert cfg["vocab"] == 256, "this reference reads byte-level data only"
    data = np.frombuffer(open(data_file, "rb").read(), dtype=np.uint8).astype(np.int64)
    T = cfg["seq"]
    windows = min(k, (len(data) - 1) // T)
    total = 0.0
    for i in range(windows):
        total += forward_loss(p, cfg, data[i * T:i * T + T], data[i * T + 1:i * T + T + 1])
    print(json.dumps({"loss": total / (windows * T), "windows": windows, "tokens": windows * T}))


if __name__ == "__main__":
    main()
