#!/usr/bin/env bash
# Two ranks on two "hosts" whose one link is saturated by other traffic: two network
# namespaces joined by a veth pair, both ends shaped with `tc qdisc ... tbf` (rate RATE, a
# queue of up to LATENCY), and TCP streams flooding the link both ways for as long as the
# ranks run. Rank r runs `conveyor ARGS...` in namespace r with RANK, WORLD_SIZE, MASTER_ADDR,
# CONVEYOR_JOB_TOKEN set (UCX over TCP on the link); their output follows at the end, each line
# prefixed "[rank r] ".
#
#   busy_link.sh CONVEYOR RATE LATENCY FLOWS -- ARGS...      as root; RATE in mbit ("2mbit")
#
# The ranks start once the link's queue has held an eighth of a second of traffic.
#
# Exit status: the larger of the two ranks' exit codes. Everything it starts (namespaces, the
# flood, the ranks) is stopped by pid and deleted on exit.
set -Eeuo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
source "$(dirname "$0")/../../../scripts/veth_pair.sh"
bin=$1 rate=$2 latency=$3 flows=$4
shift 4
[[ $1 == -- ]] && shift

id=$(($$ % 200 + 20))
ns=(cvybusy${id}a cvybusy${id}b)
addr=(10.254.$id.1 10.254.$id.2)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  veth_pair_down "${ns[0]}" "${ns[1]}"
  rm -f "${flood:-}"
  rm -rf "${logs:-}"
}
trap cleanup EXIT
trap "exit 143" TERM INT

veth_pair_up "${ns[0]}" "${ns[1]}" "${addr[0]}" "${addr[1]}"
for i in 0 1; do
  ip netns exec "${ns[i]}" tc qdisc add dev veth0 root tbf rate "$rate" burst 64kb latency "$latency"
done

# The flood: FLOWS TCP streams each way, writing as fast as the link takes them, with a
# loss-based congestion control, so the link's queue stays full.
flood=$(mktemp)
cat >"$flood" <<'PY'
import socket, sys, threading
mode, host, port, flows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if mode == "sink":
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(64)
    print("ready", flush=True)
    def drain(c):
        while c.recv(1 << 20):
            pass
    while True:
        c, _ = srv.accept()
        threading.Thread(target=drain, args=(c,), daemon=True).start()
else:
    data = b"x" * (1 << 20)
    def pour():
        s = socket.socket()
        # A loss-based congestion control fills the link's queue (bulk traffic does).
        for cc in (b"cubic", b"reno"):
            try:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc)
                break
            except OSError:
                pass
        s.connect((host, port))
        while True:
            s.sendall(data)
    for _ in range(flows):
        threading.Thread(target=pour, daemon=True).start()
    threading.Event().wait()
PY
for i in 0 1; do
  ready=$(mktemp)
  ip netns exec "${ns[i]}" python3 "$flood" sink "${addr[i]}" 5999 0 >"$ready" 2>&1 &
  pids+=($!)
  for ((tries = 0; tries < 100; tries++)); do grep -q ready "$ready" && break; sleep 0.05; done
  rm -f "$ready"
done
for i in 0 1; do
  ip netns exec "${ns[i]}" python3 "$flood" pour "${addr[1 - i]}" 5999 "$flows" >/dev/null 2>&1 &
  pids+=($!)
done
# Start the ranks once a queue has held an eighth of a second of traffic (20 s at most; one
# direction's usually stays shorter).
backlog() {
  ip netns exec "${ns[$1]}" tc -s -j qdisc show dev veth0 | grep -o '"backlog":[0-9]*' | grep -o '[0-9]*$'
}
eighth_second=$(($(echo "$rate" | tr -dc 0-9) * 1000000 / 8 / 8))  # RATE in mbit
filled=(0 0)
for ((tries = 0; tries < 400 && filled[0] + filled[1] == 0; tries++)); do
  for i in 0 1; do (($(backlog $i) >= eighth_second)) && filled[i]=1; done
  sleep 0.05
done
if ((filled[0] + filled[1] > 0)); then
  echo "busy_link: the link's queue filled: yes"
else
  echo "busy_link: the link's queue filled: no (queued bytes now: $(backlog 0) and $(backlog 1))"
fi

logs=$(mktemp -d)
rank_pids=()
for r in 0 1; do
  ip netns exec "${ns[r]}" env RANK=$r WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR="${addr[0]}" \
    MASTER_PORT=29400 CONVEYOR_JOB_TOKEN="busy-link-$id" UCX_TLS=tcp UCX_NET_DEVICES=veth0 \
    "$bin" "$@" >"$logs/rank$r.log" 2>&1 &
  rank_pids+=($!)
  pids+=($!)
done
status=0
for p in "${rank_pids[@]}"; do
  wait "$p" || { s=$?; ((s > status)) && status=$s; }
done
for r in 0 1; do sed "s/^/[rank $r] /" "$logs/rank$r.log"; done
exit "$status"
