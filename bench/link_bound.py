#!/usr/bin/env python3
"""The best step time a schedule's own order allows over a slow link, with every transfer
perfectly overlapped: what no progress engine can beat. The orders come from `conveyor schedule
--trace` (the same code the executor runs); each stage then runs its actions in that order, a
forward waits for its activation and an input-gradient backward for its gradient, and each
direction of each link carries one message at a time, taking MSG ms (sends leave as soon as
the action that produced them ends, as the executor posts them).

  bench/link_bound.py CONVEYOR --stages 2 --microbatches 8 --schedule 1f1b \
      [--warmup-per-hop 2] --f 26 --b 25 --w 21 --msg 0 21 42 84
prints, per message time, the step time and its ratio to MSG = 0.
"""
import argparse, json, os, re, subprocess, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("conveyor")
ap.add_argument("--stages", type=int, default=2)
ap.add_argument("--microbatches", type=int, default=8)
ap.add_argument("--schedule", default="1f1b")
ap.add_argument("--warmup-per-hop", type=int, default=1)
ap.add_argument("--f", type=float, required=True)
ap.add_argument("--b", type=float, required=True)
ap.add_argument("--w", type=float, required=True)
ap.add_argument("--msg", type=float, nargs="+", required=True)
a = ap.parse_args()
p, m = a.stages, a.microbatches

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "t.json")
    subprocess.run([a.conveyor, "schedule", "--stages", str(p), "--microbatches", str(m),
                    "--schedule", a.schedule, "--warmup-per-hop", str(a.warmup_per_hop),
                    "--trace", path], check=True,
                   stdout=subprocess.DEVNULL)
    events = json.load(open(path))["traceEvents"]
orders = [[] for _ in range(p)]
for e in sorted((e for e in events if e.get("ph") == "X"), key=lambda e: e["ts"]):
    op, mb = re.fullmatch(r"(BW|F|B|W)(\d+)", e["name"]).groups()
    # BW runs as B then W, the gradient leaving after B (as the executor runs it).
    orders[e["tid"]] += [("B", int(mb)), ("W", int(mb))] if op == "BW" else [(op, int(mb))]


def step(msg):
    cost = {"F": a.f, "B": a.b, "W": a.w}
    clock, nxt = [0.0] * p, [0] * p
    link_free = {}  # (from, to) -> when that direction is free
    arrival = {}    # (kind, stage, mb) -> when its input is at the stage
    def send(kind, src, dst, mb, at):
        start = max(at, link_free.get((src, dst), 0.0))
        link_free[(src, dst)] = start + msg
        arrival[(kind, dst, mb)] = start + msg
    while any(nxt[s] < len(orders[s]) for s in range(p)):
        moved = False
        for s in range(p):
            if nxt[s] == len(orders[s]):
                continue
            op, mb = orders[s][nxt[s]]
            need = ("act", s, mb) if op == "F" and s > 0 else \
                   ("grad", s, mb) if op == "B" and s < p - 1 else None
            if need and need not in arrival:
                continue
            end = max(clock[s], arrival[need] if need else 0.0) + cost[op]
            clock[s], nxt[s], moved = end, nxt[s] + 1, True
            if op == "F" and s < p - 1:
                send("act", s, s + 1, mb, end)
            if op == "B" and s > 0:
                send("grad", s, s - 1, mb, end)
        assert moved, "the order deadlocks"
    return max(clock)


base = step(0.0)
for msg in a.msg:
    t = step(msg)
    print(f"{a.schedule} (warm-up per hop {a.warmup_per_hop}) p={p} m={m} message {msg:g} ms: step {t:.0f} ms, {t / base:.2f}x")
