#!/usr/bin/python3
"""An independent writer of llm.c's GPT-2 checkpoint format, for the import tests: reads a
Hugging Face GPT-2 folder (safetensors by its documented layout) and writes the weights as
llm.c's train_gpt2.py does (header of 256 int32: magic 20240326, version 3, maxT, V, L, NH,
C, padded V; then fp32 wte padded to Vp rows, wpe, and each per-layer tensor stacked over
the layers, Conv1D weights back to [out, in]).

usage: llmc_writer.py HF_DIR OUT.bin      Exit 77 when numpy is missing.
"""
import json
import os
import sys

try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"missing python module: {e}", file=sys.stderr)
    sys.exit(77)


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    return {name: np.frombuffer(data[i["data_offsets"][0]:i["data_offsets"][1]], dtype="<f4")
            .reshape(i["shape"]) for name, i in header.items() if name != "__metadata__"}


def main():
    hf_dir, out = sys.argv[1], sys.argv[2]
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    t = read_safetensors(os.path.join(hf_dir, "model.safetensors"))
    V, T, L, H, C = (cfg[k] for k in ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd"))
    Vp = (V + 127) // 128 * 128
    header = np.zeros(256, dtype="<i4")
    header[:8] = [20240326, 3, T, V, L, H, C, Vp]
    wte = np.zeros((Vp, C), dtype="<f4")
    wte[:V] = t["transformer.wte.weight"]
    tensors = [wte, t["transformer.wpe.weight"]]
    per_layer = [("ln_1.weight", False), ("ln_1.bias", False), ("attn.c_attn.weight", True),
                 ("attn.c_attn.bias", False), ("attn.c_proj.weight", True),
                 ("attn.c_proj.bias", False), ("ln_2.weight", False), ("ln_2.bias", False),
                 ("mlp.c_fc.weight", True), ("mlp.c_fc.bias", False),
                 ("mlp.c_proj.weight", True), ("mlp.c_proj.bias", False)]
    for name, conv1d in per_layer:
        stack = [t[f"transformer.h.{l}.{name}"] for l in range(L)]
        tensors.append(np.stack([s.T if conv1d else s for s in stack]))
    tensors += [t["transformer.ln_f.weight"], t["transformer.ln_f.bias"]]
    with open(out, "wb") as f:
        f.write(header.tobytes())
        for x in tensors:
            f.write(np.ascontiguousarray(x, dtype="<f4").tobytes())


if __name__ == "__main__":
    main()
