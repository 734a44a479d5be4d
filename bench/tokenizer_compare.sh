#!/usr/bin/env bash
# Bytes or BPE on the main job's corpus (docs/INTEROP.md): the default model trained 300 steps
# on the fortunes corpus with byte-level tokens and with a 1,024-piece BPE vocabulary, on the
# same 19:1 line split; prints both validation losses and samples.
# Usage: bench/tokenizer_compare.sh [conveyor binary]   (work files in a temporary folder)
set -euo pipefail
conveyor=$(realpath "${1:-$(dirname "$0")/../build/release/launcher/conveyor}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$conveyor" tokenize --out bpe --vocab-size 1024 2>/dev/null | head -1
# The same split as text files: every 20th line (tokenize's --val-every 20), in the order
# conveyor reads the corpus folder (sorted, without .dat index files and repeated links).
/usr/bin/python3 - <<'PY'
import os
root = "/usr/share/games/fortunes"
seen, i = set(), 0
with open("train.txt", "wb") as train, open("val.txt", "wb") as val:
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name.startswith(".") or name.endswith(".dat") or not os.path.isfile(path):
            continue
        if os.path.realpath(path) in seen:
            continue
        seen.add(os.path.realpath(path))
        for line in open(path, "rb").read().splitlines(keepends=True):
            (val if i % 20 == 19 else train).write(line.rstrip(b"\n") + b"\n")
            i += 1
PY
echo "== bytes"
"$conveyor" train --data train.txt --val-data val.txt --steps 300 --print-every 300 --sample 300 |
  grep -E "val loss|^---|^[^\[]" | tail -15
echo "== BPE 1024"
"$conveyor" train --data bpe --val-data bpe --vocab 1024 --tokenizer bpe/tokenizer/bpe.model \
  --steps 300 --print-every 300 --sample 150 | grep -E "val loss|^---|^[^\[]" | tail -15
