#!/usr/bin/env python3
"""Layer-balanced against cost-balanced partition (--partition auto), predicted and measured.

For each partition, runs `conveyor schedule --partition` for the predicted stage costs
(model/piece_cost.h), then a real run, `conveyor launch --nproc P -- conveyor train
--stages P ... --trace FILE`, and sums each stage's compute spans (F, B, W) in the merged
trace: the stage's busy time per step, over the steps after the first (which allocates the
activation slots). Prints both per stage with the largest over the smallest, and the
median tokens/s and bubble of those steps (--metrics); the last line is the same as JSON.

    python3 bench/partition_balance.py [--bin build/release/launcher/conveyor] [--steps 3]

The default shape is narrow with GPT-2's vocabulary, where the head weighs about 30 blocks:
96 layers, d 128, 4 heads, T 128, V 50257, 32 micro-batches of one sequence, 4 stages, 1F1B.
Standard library only.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def default_counts(layers, pieces):
    # model/partition.h's default_partition: layers / pieces each, the rest to the first.
    return [layers // pieces + (1 if i < layers % pieces else 0) for i in range(pieces)]


def predicted(args, partition):
    """Stage costs (GFLOP-equivalents per micro-batch) from `conveyor schedule`."""
    out = subprocess.run(
        [args.bin, "schedule", "--stages", str(args.stages), "--microbatches",
         str(args.microbatches), "--partition", partition] + model_flags(args),
        check=True, capture_output=True, text=True).stdout
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("stage ") and "of max" in line)
    return [float(line.split()[1]) for line in lines[at + 1:at + 1 + args.stages]]


def model_flags(args):
    return ["--layers", str(args.layers), "--dim", str(args.dim), "--heads", str(args.heads),
            "--seq", str(args.seq), "--vocab", str(args.vocab), "--micro-batch-size",
            str(args.micro_batch_size)]


def busy_per_step(trace_path, stages):
    """Per stage, the mean over steps 2.. of the summed compute spans, in ms."""
    with open(trace_path) as f:
        doc = json.load(f)
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    spans = [e for e in events if e.get("ph") == "X" and e.get("cat") == "compute"]
    # A step starts with stage 0's first forward (as bench/trace_to_svg.py tells steps apart).
    starts = sorted(e["ts"] for e in spans if e["tid"] == 0 and e["name"] in ("F0", "F0.0"))
    busy = [0.0] * stages
    for e in spans:
        step = sum(1 for s in starts if s < e["ts"] + e["dur"])
        if step >= 2:
            busy[e["tid"]] += e["dur"]
    steps = len(starts) - 1
    return [b / 1000.0 / steps for b in busy]


def run(args, name, partition, tmp):
    trace = os.path.join(tmp, name + ".json")
    metrics = os.path.join(tmp, name + ".jsonl")
    cmd = [args.bin, "launch", "--nproc", str(args.stages), "--", args.bin, "train",
           "--stages", str(args.stages), "--microbatches", str(args.microbatches),
           "--steps", str(args.steps), "--print-every", "0", "--trace", trace,
           "--metrics", metrics] + model_flags(args)
    if partition != "default":
        cmd += ["--partition", partition]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(metrics) as f:
        rows = [json.loads(line) for line in list(f)[1:]]
    tps = statistics.median(r["tokens_per_s"] for r in rows)
    bubble = statistics.median(r["bubble"] for r in rows)
    return busy_per_step(trace, args.stages), tps, bubble


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default=os.path.join(HERE, "..", "build", "release", "launcher",
                                                 "conveyor"))
    p.add_argument("--stages", type=int, default=4)
    p.add_argument("--layers", type=int, default=96)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--microbatches", type=int, default=32)
    p.add_argument("--micro-batch-size", type=int, default=1)
    p.add_argument("--steps", type=int, default=3, help="at least 2: the first is not counted")
    args = p.parse_args()
    if args.steps < 2:
        sys.exit("--steps must be at least 2: the first step is not counted")

    balanced = ",".join(map(str, default_counts(args.layers, args.stages)))
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, partition, shown in (("layer_balanced", "default", balanced),
                                       ("auto", "auto", "auto")):
            cost = predicted(args, shown)
            busy, tps, bubble = run(args, name, partition, tmp)
            result[name] = {
                "predicted_cost": cost,
                "predicted_max_over_min": round(max(cost) / min(cost), 3),
                "busy_ms_per_step": [round(b, 1) for b in busy],
                "busy_max_over_min": round(max(busy) / min(busy), 3),
                "tokens_per_s": round(tps, 1),
                "bubble": round(bubble, 3),
            }
            print("%s (--partition %s):" % (name, shown))
            print("  %-6s %14s %16s" % ("stage", "predicted cost", "busy ms/step"))
            for s in range(args.stages):
                print("  %-6d %14.2f %16.1f" % (s, cost[s], busy[s]))
            print("  max/min: predicted %.3f, measured %.3f; %.1f tokens/s, bubble %.3f" %
                  (max(cost) / min(cost), max(busy) / min(busy), tps, bubble))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
