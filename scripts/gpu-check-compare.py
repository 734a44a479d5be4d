#!/usr/bin/env python3
"""Compares the per-step losses of two training runs for scripts/gpu-check.sh.

Usage:
  gpu-check-compare.py same REF.jsonl RUN.jsonl [--first-step N]
  gpu-check-compare.py close REF.jsonl RUN.jsonl --tol T [--tol-steps K] [--bound B]
                       [--first-step N]

Each file is a `conveyor train --metrics` file; the rows with "loss" and "grad_norm" are the
training steps (validation rows have no grad norm). RUN's steps are compared with the same
steps of REF, and every step of RUN must be in REF.

same:  every step's loss and grad norm are the same numbers (the metrics print floats with
       %.9g, which round-trips: equal numbers are equal bits).
close: prints a table of every step (step, reference loss, run loss, relative difference of
       the loss and of the grad norm, relative to the reference) and the worst difference;
       fails when a loss among the first K steps of RUN (all with no --tol-steps) is further
       than T from the reference's, or, with --bound, when any step's is further than B.
--first-step N: RUN must start at step N (a resumed run: it continued, it did not restart).

Exit status 0 when the runs agree, 1 when they do not or a file is unusable."""
import argparse
import json
import math
import os
import sys


def fail(message):  # on stdout, so that it lands in comparisons.txt with the tables
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def steps(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                m = json.loads(line)
                if "loss" in m and "grad_norm" in m:
                    out[m["step"]] = (m["loss"], m["grad_norm"])
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")
    return out


def rel(ref, run):  # a NaN or infinity anywhere is infinitely far
    d = abs(ref - run) / abs(ref) if ref != 0 else abs(run)
    return d if math.isfinite(d) else math.inf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["same", "close"])
    ap.add_argument("ref")
    ap.add_argument("run")
    ap.add_argument("--tol", type=float)
    ap.add_argument("--tol-steps", type=int, default=0)
    ap.add_argument("--bound", type=float)
    ap.add_argument("--first-step", type=int)
    a = ap.parse_args()
    if a.mode == "close" and a.tol is None:
        ap.error("close needs --tol")

    ref, run = steps(a.ref), steps(a.run)
    ref_name, run_name = (os.path.basename(p).removesuffix(".jsonl") for p in (a.ref, a.run))
    names = f"{run_name} against {ref_name}"
    if not run:
        fail(f"{names}: {run_name} has no training steps")
    missing = sorted(s for s in run if s not in ref)
    if missing:
        fail(f"{names}: steps {missing} of the run are not in the reference "
                 f"(it has {min(ref, default='none')} to {max(ref, default='none')})")
    order = sorted(run)
    if a.first_step is not None and order[0] != a.first_step:
        fail(f"{names}: the run starts at step {order[0]}, not {a.first_step}")
    span = f"steps {order[0]}-{order[-1]}"

    if a.mode == "same":
        for s in order:
            if ref[s] != run[s]:
                fail(f"{names}: step {s} differs: loss {run[s][0]!r} grad norm {run[s][1]!r}"
                         f"; reference loss {ref[s][0]!r} grad norm {ref[s][1]!r}")
        print(f"ok: {names}: {span} bit-identical (loss and grad norm)")
        return

    checked = order[:a.tol_steps] if a.tol_steps else order
    print(f"{names}: loss relative difference {a.tol:g} or less in "
          f"{'the first %d steps' % len(checked) if a.tol_steps else 'every step'}"
          + (f", {a.bound:g} or less in every step" if a.bound is not None else ""))
    print(f"{'step':>5} {ref_name + ' loss':>15} {run_name + ' loss':>15} {'loss rel diff':>14} "
          f"{'grad norm rel diff':>19}")
    failures = []
    worst = (0.0, order[0])
    for s in order:
        (ref_loss, ref_norm), (run_loss, run_norm) = ref[s], run[s]
        d = rel(ref_loss, run_loss)
        worst = max(worst, (d, s))
        flag = ""
        if s in checked and d > a.tol:
            flag = f"  > {a.tol:g}"
        elif a.bound is not None and d > a.bound:
            flag = f"  > {a.bound:g}"
        if flag:
            failures.append(s)
        print(f"{s:>5} {ref_loss:>15.9g} {run_loss:>15.9g} {d:>14.3e} "
              f"{rel(ref_norm, run_norm):>19.3e}{flag}")
    worst_checked = max(rel(ref[s][0], run[s][0]) for s in checked)
    verdict = "FAIL" if failures else "ok"
    print(f"{verdict}: {names}, {span}: worst loss relative difference {worst[0]:.3e} (step "
          f"{worst[1]}); {worst_checked:.3e} in the {len(checked)} checked step(s)"
          + (f"; out of bounds at steps {failures}" if failures else ""))
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
