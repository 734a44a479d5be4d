#!/usr/bin/env bash
# Step time of a 2-stage pipeline whose stages sit on two "hosts" joined by one slow link: two
# network namespaces, a veth pair between them, both ends shaped with `tc qdisc ... tbf` (netem
# is not in every kernel), one rank started in each (RANK, WORLD_SIZE, MASTER_ADDR,
# CONVEYOR_JOB_TOKEN, as any launcher would), UCX over TCP so every byte crosses the link.
# Per schedule and link rate: the median step time of each run (its first 3 steps dropped),
# the median over REPEATS runs, its ratio to the unshaped link's, and what a pipeline that
# hides its transfers behind compute would pay (the ideal below). Runs alternate rates within
# each repeat, so slow drift of the machine spreads over all of them.
#
#   bench/shaped_link.sh [path/to/conveyor]                  as root
#   RATES="200mbit 100mbit 50mbit" SCHEDULES="1f1b zb-h1" REPEATS=2 STEPS=12 TLS=tcp
#   MODEL="--layers 4 --dim 256 --heads 4 --seq 128 --microbatches 8 --micro-batch-size 4"
#   A SCHEDULES entry may end in +K: that schedule with --warmup-per-hop K (1f1b+2: stage s
#   runs 2(p-1-s) warm-up forwards, enough to hide a message time of about a micro-batch's).
#   TLS=sm runs both ranks in one namespace over shared memory instead (no link at all): the
#   fast case, where whatever moves transfers off the critical path must cost nothing.
#   EXTRA_ENV="UCX_RNDV_THRESH=inf ..." adds environment entries to both ranks, EXTRA_ARGS
#   arguments to their `conveyor train`, with %n standing for the run's path without an
#   extension (e.g. "--trace %n.trace.json");
#   KEEP=DIR copies that folder (logs, metrics, traces) to DIR at the end.
#
# The ideal: the unshaped step plus the fill and drain at the link's rate (the first
# activation and the last gradient cannot hide: 2 messages), or, when the link is the
# bottleneck, the link's time for a step's messages in one direction (m messages of B*T*C
# floats) plus one micro-batch's compute on each side of it; the larger of the two.
#
# Everything it starts (namespaces, the ranks) is stopped by pid and deleted on exit.
set -Eeuo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/scripts/veth_pair.sh"
bin=$(realpath "${1:-$here/build/release/launcher/conveyor}")
[[ -x $bin ]] || { echo "shaped_link: no conveyor at $bin (give its path)" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "shaped_link: needs root (network namespaces, tc)" >&2; exit 2; }
command -v tc >/dev/null || { echo "shaped_link: tc not found (apt-get install iproute2)" >&2; exit 2; }

RATES=${RATES:-"200mbit 100mbit 50mbit"}
SCHEDULES=${SCHEDULES:-"1f1b zb-h1"}
REPEATS=${REPEATS:-2}
STEPS=${STEPS:-12}
TLS=${TLS:-tcp}
EXTRA_ARGS=${EXTRA_ARGS:-}
MODEL=${MODEL:-"--layers 4 --dim 256 --heads 4 --seq 128 --microbatches 8 --micro-batch-size 4"}

id=$(($$ % 200 + 20))
ns_a=cvylink${id}a ns_b=cvylink${id}b
addr_a=10.253.$id.1 addr_b=10.253.$id.2
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  veth_pair_down "$ns_a" "$ns_b"
  [[ -n ${KEEP:-} ]] && mkdir -p "$KEEP" && cp -r "$tmp"/. "$KEEP"/
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "shaped_link: failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

veth_pair_up "$ns_a" "$ns_b" "$addr_a" "$addr_b"

shape() {  # shape RATE|unshaped: both directions of the link
  local ns
  for ns in "$ns_a" "$ns_b"; do
    ip netns exec "$ns" tc qdisc del dev veth0 root 2>/dev/null || true
    [[ $1 == unshaped ]] && continue
    # A burst of 256 KiB passes a tick's worth of bytes at every rate here (HZ >= 100); the
    # queue holds up to a second of traffic, so tbf delays and never drops.
    ip netns exec "$ns" tc qdisc add dev veth0 root tbf rate "$1" burst 256kb latency 1s
  done
}

port=$((29000 + id * 10))
run() {  # run SCHEDULE[+K] RATE NAME: one job of two ranks; metrics in $tmp/NAME.jsonl
  local schedule=${1%%+*} hop=1 name=$3 r ns addr status=0 rank_pids=()
  [[ $1 == *+* ]] && hop=${1#*+}
  port=$((port + 1))
  for r in 0 1; do
    # UCX's TCP transport on the link's device only (the other, lo, reaches nothing there).
    if [[ $TLS == sm ]]; then ns=$ns_a addr=127.0.0.1 devices=all; else
      ns=$([[ $r == 0 ]] && echo "$ns_a" || echo "$ns_b") addr=$addr_a devices=veth0; fi
    # shellcheck disable=SC2086  # MODEL is a list of words
    ip netns exec "$ns" env RANK=$r WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=$addr \
      MASTER_PORT=$port CONVEYOR_JOB_TOKEN="shaped-link-$id" UCX_TLS=$TLS UCX_NET_DEVICES=$devices ${EXTRA_ENV:-} \
      "$bin" train $MODEL --stages 2 --schedule "$schedule" --warmup-per-hop "$hop" --steps "$STEPS" --print-every 0 \
      --metrics "$tmp/$name.jsonl" ${EXTRA_ARGS//%n/$tmp/$name} \
      >"$tmp/$name.$r.log" 2>&1 &
    rank_pids+=($!)
    pids+=($!)
  done
  for r in "${rank_pids[@]}"; do wait "$r" || status=$?; done
  if ((status != 0)); then
    echo "shaped_link: $name failed (exit $status); its ranks said:" >&2
    tail -n 5 "$tmp/$name".*.log >&2
    exit 1
  fi
}

rates=(unshaped)
if [[ $TLS != sm ]]; then
  read -r -a more <<<"$RATES"
  rates+=("${more[@]}")
fi
for schedule in $SCHEDULES; do
  for ((i = 1; i <= REPEATS; i++)); do
    # Alternate the order of the rates between repeats.
    order=("${rates[@]}")
    ((i % 2 == 0)) && mapfile -t order < <(printf '%s\n' "${rates[@]}" | tac)
    for rate in "${order[@]}"; do
      [[ $TLS == sm ]] || shape "$rate"
      echo "run $schedule $rate ($i of $REPEATS)" >&2
      run "$schedule" "$rate" "$schedule.$rate.$i"
    done
  done
done

where="2 namespace hosts joined by one veth link"
[[ $TLS == sm ]] && where="one namespace, over shared memory (no link)"
echo "2 stages on $where, UCX_TLS=$TLS, $MODEL, $STEPS steps, $(nproc) cores, $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?')"
python3 - "$tmp" "$REPEATS" "$MODEL" "$SCHEDULES" "$TLS" "${rates[@]}" <<'PY'
import json, re, statistics, sys
tmp, repeats, model, schedules, tls, rates = (sys.argv[1], int(sys.argv[2]), sys.argv[3],
                                              sys.argv[4].split(), sys.argv[5], sys.argv[6:])
arg = lambda name: int(re.search(rf"--{name} (\d+)", model).group(1))
m, b, t, c = arg("microbatches"), arg("micro-batch-size"), arg("seq"), arg("dim")
message_bits = b * t * c * 4 * 8
def bits_per_s(rate):
    n, unit = re.fullmatch(r"([\d.]+)([kmg]?)bit", rate).groups()
    return float(n) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[unit]
def step_ms(path):
    rows = [json.loads(l) for l in open(path) if '"step_ms"' in l]
    return statistics.median(r["step_ms"] for r in rows[3:])
print(f"| schedule | link | message | step (median of {repeats}) | vs unshaped | ideal |")
print("|---|---|---|---|---|---|")
for s in schedules:
    base = statistics.median(step_ms(f"{tmp}/{s}.unshaped.{i}.jsonl") for i in range(1, repeats + 1))
    for rate in rates:
        ms = statistics.median(step_ms(f"{tmp}/{s}.{rate}.{i}.jsonl") for i in range(1, repeats + 1))
        if rate == "unshaped":
            link = "none (shared memory)" if tls == "sm" else "unshaped"
            print(f"| {s} | {link} | | {ms:.0f} ms | 1.00 | 1.00 |")
            continue
        msg_ms = message_bits / bits_per_s(rate) * 1e3
        per_mb = base / (m + 1)  # one micro-batch's F and B on one stage, roughly
        ideal = max(base + 2 * msg_ms, m * msg_ms + 2 * per_mb)
        print(f"| {s} | {rate} | {msg_ms:.0f} ms | {ms:.0f} ms | {ms / base:.2f} | {ideal / base:.2f} |")
PY
