#!/usr/bin/env bash
# How soon a dead or frozen rank ends a job. A 4-stage training job (tiny model, --sleep-f-ms
# 50 so it is mid-training) runs under `conveyor launch`; once the first step's metrics are
# written, rank 2 gets SIGKILL (dead) or SIGSTOP (frozen: alive but silent). Per signal and
# UCX_TLS, the median over REPEATS runs of the seconds from the signal to the last survivor's
# message naming rank 2 (detection), and to the end of `conveyor launch` (job end). The tests
# check that this happens, not how soon (tests/integration/transport/failure_test.cc,
# tests/integration/pipeline/launcher_test.cc).
# Usage: bench/failure_detection.sh [path/to/conveyor]
#        SIGNALS="KILL STOP" TLS="sm tcp" REPEATS=3 by default
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "${1:-$here/../build/release/launcher/conveyor}")
exec /usr/bin/python3 - "$bin" "${TLS:-sm tcp}" "${REPEATS:-3}" "${SIGNALS:-KILL STOP}" <<'EOF'
import json, os, re, shlex, statistics, subprocess, sys, tempfile, threading, time

conveyor, tls_list, repeats = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
signals = sys.argv[4].split()


def one_run(tls, sig):
    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "m.jsonl")
        train = [conveyor, "train", "--stages", "4", "--layers", "4", "--dim", "16", "--heads", "2",
                 "--seq", "16", "--microbatches", "4", "--micro-batch-size", "1", "--steps", "1000",
                 "--print-every", "0", "--sleep-f-ms", "50", "--metrics", metrics]
        q = shlex.quote
        script = (f'if [ "$RANK" = 2 ]; then ( until [ -s {q(metrics)} ]; do sleep 0.05; done; '
                  f'echo SIGNALLED; kill -{sig} $$ ) & fi; exec ' + " ".join(map(q, train)))
        p = subprocess.Popen([conveyor, "launch", "--nproc", "4", "--", "sh", "-c", script],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=dict(os.environ, UCX_TLS=tls))
        watchdog = threading.Timer(300, p.kill)  # a hung job fails the run, not the machine
        watchdog.start()
        signalled, named = None, {}
        for line in p.stdout:
            now = time.monotonic()
            m = re.match(r"\[rank (\d+)\] (.*)", line)
            if not m:
                continue
            rank, text = int(m[1]), m[2]
            if rank == 2 and text.strip() == "SIGNALLED":
                signalled = now
            elif rank != 2 and "rank 2" in text:
                named.setdefault(rank, now)
        p.wait()
        end = time.monotonic()
        watchdog.cancel()
        if signalled is None or sorted(named) != [0, 1, 3]:
            sys.exit(f"SIG{sig} UCX_TLS={tls}: run did not go as planned (exit {p.returncode}, "
                     f"survivors naming rank 2: {sorted(named)})")
        return max(named.values()) - signalled, end - signalled


for sig in signals:
    for tls in tls_list:
        runs = [one_run(tls, sig) for _ in range(repeats)]
        print(json.dumps({"signal": "SIG" + sig, "ucx_tls": tls, "runs": repeats,
                          "detection_s": round(statistics.median(r[0] for r in runs), 3),
                          "job_end_s": round(statistics.median(r[1] for r in runs), 3)}))
EOF
