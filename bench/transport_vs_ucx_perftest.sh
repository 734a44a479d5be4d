#!/usr/bin/env bash
# Compares `conveyor bench transport` with UCX's own ucx_perftest (Debian: ucx-utils) on
# this host, with the same UCX_TLS in the same run, and prints the ratios.
#
#   bench/transport_vs_ucx_perftest.sh [TLS ...]      (default: sm tcp)
#   CONVEYOR=path/to/conveyor REPEATS=3 bench/transport_vs_ucx_perftest.sh sm
#
# Bandwidth: ucx_perftest -t tag_bw vs conveyor's streaming test (MB = 2^20 bytes in both).
# Latency: ucx_perftest -t tag_lat (half round trip) vs conveyor's ping-pong, at 8 B.
# Every figure is the best of REPEATS runs (min latency, max bandwidth) for both tools,
# which is the fair comparison on a shared, noisy machine.
# Targets (docs/BENCHMARKS.md, "Transport"): bandwidth >= 0.95x for sizes >= 1 MiB,
# 8 B latency <= 1.2x.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
CONVEYOR=${CONVEYOR:-$here/build/release/launcher/conveyor}
REPEATS=${REPEATS:-3}
BW_SIZES=${BW_SIZES:-"1048576 4194304 16777216 67108864"}
TLS_LIST=("$@")
[ ${#TLS_LIST[@]} -eq 0 ] && TLS_LIST=(sm tcp)

command -v ucx_perftest >/dev/null || { echo "ucx_perftest not found (apt-get install ucx-utils)" >&2; exit 2; }
[ -x "$CONVEYOR" ] || { echo "conveyor binary not found at $CONVEYOR (set CONVEYOR=...)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# perftest TEST SIZE ITERS -> prints the final-results line (server and client on 127.0.0.1)
perftest() {
  local test=$1 size=$2 iters=$3 port warm
  port=$(free_port)
  warm=$(( iters / 10 > 2 ? iters / 10 : 2 ))
  ucx_perftest -p "$port" >/dev/null 2>&1 &
  local server=$!
  local out=""
  for _ in $(seq 50); do  # the server needs a moment to listen
    if out=$(ucx_perftest 127.0.0.1 -p "$port" -t "$test" -s "$size" -n "$iters" -w "$warm" -f 2>/dev/null); then break; fi
    sleep 0.1
  done
  wait "$server" 2>/dev/null || true
  echo "$out" | awk 'NF == 8 && $1 ~ /^[0-9]+$/ { print }' | tail -1
}

for tls in "${TLS_LIST[@]}"; do
  export UCX_TLS=$tls
  : > "$tmp/conveyor.$tls"
  : > "$tmp/perftest.$tls"
  for r in $(seq "$REPEATS"); do
    "$CONVEYOR" bench transport --min-bytes 8 --max-bytes 67108864 >> "$tmp/conveyor.$tls"
    echo "lat 8 $(perftest tag_lat 8 200000)" >> "$tmp/perftest.$tls"
    for s in $BW_SIZES; do
      n=$(( 2147483648 / s )); [ $n -lt 32 ] && n=32; [ $n -gt 100000 ] && n=100000
      echo "bw $s $(perftest tag_bw "$s" "$n")" >> "$tmp/perftest.$tls"
    done
  done
done

python3 - "$tmp" "$REPEATS" "${TLS_LIST[@]}" <<'PY'
import json, sys
tmp, repeats, tls_list = sys.argv[1], sys.argv[2], sys.argv[3:]
ok = True
print(f"# conveyor bench transport vs ucx_perftest (best of {repeats}; MB = 2^20 bytes)")
for tls in tls_list:
    conv = {}
    for line in open(f"{tmp}/conveyor.{tls}"):
        row = json.loads(line)
        c = conv.setdefault(row["bytes"], {"bw": 0.0, "lat": float("inf")})
        c["bw"] = max(c["bw"], row["bandwidth_MBps"])
        c["lat"] = min(c["lat"], row["latency_us"])
    pt_bw, pt_lat = {}, {}
    for line in open(f"{tmp}/perftest.{tls}"):
        f = line.split()
        if len(f) < 10:
            print(f"UCX_TLS={tls}: ucx_perftest produced no result for {f[:2]}"); ok = False; continue
        kind, size, vals = f[0], int(f[1]), [float(x) for x in f[2:]]
        # columns: iterations, p50, average, overall (usec); bw average, overall; msg rate x2
        if kind == "lat":
            pt_lat[size] = min(pt_lat.get(size, float("inf")), vals[3])
        else:
            pt_bw[size] = max(pt_bw.get(size, 0.0), vals[5])
    print(f"\nUCX_TLS={tls}")
    print(f"{'bytes':>10} {'metric':>10} {'conveyor':>12} {'ucx_perftest':>13} {'ratio':>7} target")
    for size, lat in sorted(pt_lat.items()):
        c = conv[size]["lat"]; r = c / lat
        good = r <= 1.2; ok &= good
        print(f"{size:>10} {'lat_us':>10} {c:>12.3f} {lat:>13.3f} {r:>7.2f} <=1.20 {'ok' if good else 'MISSED'}")
    for size, bw in sorted(pt_bw.items()):
        c = conv[size]["bw"]; r = c / bw
        good = r >= 0.95; ok &= good
        print(f"{size:>10} {'MB/s':>10} {c:>12.1f} {bw:>13.1f} {r:>7.2f} >=0.95 {'ok' if good else 'MISSED'}")
print("\nall targets met" if ok else "\nsome targets missed")
PY
