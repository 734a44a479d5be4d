#!/usr/bin/env bash
# Compares `conveyor bench transport` with UCX's own ucx_perftest (Debian: ucx-utils) on
# this host, with the same UCX_TLS in the same run, and prints the ratios.
#
#   bench/transport_vs_ucx_perftest.sh [TLS ...]      (default: sm tcp)
#   CONVEYOR=path/to/conveyor REPEATS=5 bench/transport_vs_ucx_perftest.sh sm
#
# Bandwidth: ucx_perftest -t tag_bw vs conveyor's streaming test (MB = 2^20 bytes in both).
# Latency: ucx_perftest -t tag_lat (half round trip) vs conveyor's ping-pong, at 8 B.
#
# Paired runs: for every size, ucx_perftest and conveyor run back to back, REPEATS times,
# each pair giving one ratio; which tool goes first alternates from one repeat to the next.
# The verdict uses the median of the paired ratios: on a shared VM the speed of core-to-core
# traffic drifts by 2-4x within seconds (measured on the dev VM), so only measurements taken
# side by side compare like with like. The best figure of each tool and the ratio of the
# bests are printed too.
# Buffers: ucx_perftest allocates through UCX (SysV shared memory with UCX_TLS=sm, a
# transparent-huge-page mapping with tcp); conveyor's come from common/host_buffer.h, as
# the pipeline's activation buffers do.
# PIN=1 (the default) places both tools alike: ucx_perftest's client (the sender, like
# conveyor's rank 0) on CPU 0 and its server on CPU 1, conveyor with --pin. PIN=0 leaves
# placement to the scheduler.
# CONTROL=1 runs ucx_perftest in conveyor's place: the paired ratios of a tool against itself
# show how far this machine's noise alone moves them.
# Targets (docs/BENCHMARKS.md, "Transport"): bandwidth >= 0.95x for sizes >= 1 MiB,
# 8 B latency <= 1.2x.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
CONVEYOR=${CONVEYOR:-$here/build/release/launcher/conveyor}
REPEATS=${REPEATS:-5}
PIN=${PIN:-1}
on_cpu() { if [ "$PIN" = 1 ]; then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }
pin_flag=(); [ "$PIN" = 1 ] && pin_flag=(--pin)
BW_SIZES=${BW_SIZES:-"1048576 4194304 16777216 67108864"}
TLS_LIST=("$@")
[ ${#TLS_LIST[@]} -eq 0 ] && TLS_LIST=(sm tcp)

[ "$PIN" != 1 ] || command -v taskset >/dev/null || { echo "taskset not found (apt-get install util-linux) or set PIN=0" >&2; exit 2; }
command -v ucx_perftest >/dev/null || { echo "ucx_perftest not found (apt-get install ucx-utils)" >&2; exit 2; }
[ -x "$CONVEYOR" ] || { echo "conveyor binary not found at $CONVEYOR (set CONVEYOR=...)" >&2; exit 2; }
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# perftest TEST SIZE ITERS -> prints the final-results line (server and client on 127.0.0.1)
perftest() {
  local test=$1 size=$2 iters=$3 port warm
  port=$(free_port)
  warm=$(( iters / 10 > 2 ? iters / 10 : 2 ))
  on_cpu 1 ucx_perftest -p "$port" >/dev/null 2>&1 &
  local server=$!
  local out=""
  for _ in $(seq 50); do  # the server needs a moment to listen
    if out=$(on_cpu 0 ucx_perftest 127.0.0.1 -p "$port" -t "$test" -s "$size" -n "$iters" -w "$warm" -f 2>/dev/null); then break; fi
    sleep 0.1
  done
  wait "$server" 2>/dev/null || true
  echo "$out" | awk 'NF == 8 && $1 ~ /^[0-9]+$/ { print }' | tail -1
}

# conveyor SIZE -> one JSON line for that size (written to a file first: nothing else runs
# while it measures)
conveyor() {
  if [ "${CONTROL:-0}" = 1 ]; then  # ucx_perftest in conveyor's place: the noise floor
    local lat="" bw="" n=$(( 2147483648 / $1 )); [ $n -lt 32 ] && n=32; [ $n -gt 100000 ] && n=100000
    if [ "$1" -le 8 ]; then lat=$(perftest tag_lat "$1" 200000 | awk '{ print $4 }')
    else bw=$(perftest tag_bw "$1" "$n" | awk '{ print $6 }'); fi
    echo "{\"bytes\": $1, \"bandwidth_MBps\": ${bw:-0}, \"latency_us\": ${lat:-0}}"
    return
  fi
  "$CONVEYOR" bench transport "${pin_flag[@]}" --min-bytes "$1" --max-bytes "$1" > "$tmp/one.json"
  cat "$tmp/one.json"
}

# pair KIND SIZE PERFTEST_ARGS... -> one line "KIND SIZE <perftest result> | <conveyor JSON>".
# Odd repeats run ucx_perftest first, even ones conveyor first, so that a drift of the
# machine's speed during a pair favours neither tool.
pair() {
  local kind=$1 size=$2 p c; shift 2
  if [ $((r % 2)) = 1 ]; then p=$(perftest "$@"); c=$(conveyor "$size")
  else c=$(conveyor "$size"); p=$(perftest "$@"); fi
  echo "$kind $size $p | $c"
}

for r in $(seq "$REPEATS"); do
  for tls in "${TLS_LIST[@]}"; do
    export UCX_TLS=$tls
    pair lat 8 tag_lat 8 200000 >> "$tmp/pairs.$tls"
    for s in $BW_SIZES; do
      n=$(( 2147483648 / s )); [ $n -lt 32 ] && n=32; [ $n -gt 100000 ] && n=100000
      pair bw "$s" tag_bw "$s" "$n" >> "$tmp/pairs.$tls"
    done
  done
done

"$PYTHON" - "$tmp" "$REPEATS" "${TLS_LIST[@]}" <<'PY'
import json, statistics, sys
tmp, repeats, tls_list = sys.argv[1], sys.argv[2], sys.argv[3:]
ok = True
import os
who = "ucx_perftest (CONTROL=1)" if os.environ.get("CONTROL") == "1" else "conveyor bench transport"
print(f"# {who} vs ucx_perftest ({repeats} paired runs; MB = 2^20 bytes)")
for tls in tls_list:
    rows = {}  # (kind, size) -> list of (perftest, conveyor)
    for line in open(f"{tmp}/pairs.{tls}"):
        left, right = line.split("|", 1)
        f = left.split()
        kind, size = f[0], int(f[1])
        if len(f) < 10 or not right.strip():
            print(f"UCX_TLS={tls}: a run produced no result for {kind} {size}"); ok = False; continue
        vals = [float(x) for x in f[2:]]
        conv = json.loads(right)
        # perftest columns: iterations, p50, average, overall (usec); bw average, overall; msg rates
        if kind == "lat":
            rows.setdefault((kind, size), []).append((vals[3], conv["latency_us"]))
        else:
            rows.setdefault((kind, size), []).append((vals[5], conv["bandwidth_MBps"]))
    print(f"\nUCX_TLS={tls}")
    print(f"{'bytes':>10} {'metric':>7} {'conveyor':>10} {'perftest':>10} {'best/best':>10} "
          f"{'paired ratios (median)':>30} target")
    for (kind, size), pairs in sorted(rows.items(), key=lambda kv: (kv[0][0] != "lat", kv[0][1])):
        ratios = sorted(c / p for p, c in pairs)
        med = statistics.median(ratios)
        if kind == "lat":
            best_p, best_c = min(p for p, _ in pairs), min(c for _, c in pairs)
            good, target, fmt = med <= 1.2, "<=1.20", "{:.3f}"
        else:
            best_p, best_c = max(p for p, _ in pairs), max(c for _, c in pairs)
            good, target, fmt = med >= 0.95, ">=0.95", "{:.0f}"
        ok &= good
        shown = " ".join(f"{x:.2f}" for x in ratios)
        print(f"{size:>10} {'lat_us' if kind == 'lat' else 'MB/s':>7} {fmt.format(best_c):>10} "
              f"{fmt.format(best_p):>10} {best_c / best_p:>10.2f} {shown + f' ({med:.2f})':>30} "
              f"{target} {'ok' if good else 'MISSED'}")
print("\nall targets met" if ok else "\nsome targets missed")
PY
