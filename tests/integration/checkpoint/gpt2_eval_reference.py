#!/usr/bin/python3
"""Independent reference for `conveyor eval`: a plain numpy GPT-2 forward pass over a
checkpoint read with h5py, scoring the first K non-overlapping windows of a byte file.

usage: gpt2_eval_reference.py STEP_DIR DATA_FILE K    -> prints {"loss", "windows", "tokens"}
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
    step_dir, data_file, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(os.path.join(step_dir, "manifest.json")) as f:
        cfg = json.load(f)["config"]["model"]
    assert cfg["vocab"] == 256, "this reference reads byte-level data only"
    p = load_params(step_dir)
    data = np.frombuffer(open(data_file, "rb").read(), dtype=np.uint8).astype(np.int64)
    T = cfg["seq"]
    windows = min(k, (len(data) - 1) // T)
    total = 0.0
    for i in range(windows):
        total += forward_loss(p, cfg, data[i * T:i * T + T], data[i * T + 1:i * T + T + 1])
    print(json.dumps({"loss": total / (windows * T), "windows": windows, "tokens": windows * T}))


if __name__ == "__main__":
    main()
