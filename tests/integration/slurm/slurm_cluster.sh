#!/usr/bin/env bash
# A real two-node Slurm cluster on this one machine, for tests: one munged, one slurmctld and
# two slurmd (one per "node", each `slurmd -N NAME` on its own port), all run as root from
# files in DIR. Nothing of the system's own munge/slurm (/etc/munge, /etc/slurm, systemd
# units, /run/munge) is used or touched.
#
#   slurm_cluster.sh up DIR     start it; returns 0 once `sinfo` shows both nodes idle (30 s
#                               deadline). On failure it prints the logs' tails, tears down
#                               what it started and exits non-zero.
#   slurm_cluster.sh check      print why this machine cannot run it (and fail), or nothing
#   slurm_cluster.sh down DIR   cancel every job, stop slurmd, slurmctld and munged (TERM,
#                               KILL after 10 s), KILL whatever is left in their sessions and
#                               any slurmstepd of this cluster (with its tasks). Idempotent,
#                               safe after a failed `up`. Prints one line per process it had
#                               to KILL ("slurm_cluster: KILLED ..."), nothing otherwise.
#
# Files in DIR after `up`:
#   cluster.env   sourceable: SLURM_CONF, CLUSTER_NODE_0/1 (in Slurm's node order: a job on
#                 both nodes runs task 0 on CLUSTER_NODE_0), CLUSTER_MUNGED_PID,
#                 CLUSTER_SLURMCTLD_PID, CLUSTER_SLURMD_PID_0/1; written as things start,
#                 so `down` can undo a half-finished `up`; renamed cluster.env.down once
#                 torn down. Export SLURM_CONF to use srun, sbatch, sinfo... against this
#                 cluster.
#   slurm.conf    the cluster's config
#   munge/        key (0400), socket munge.sock, munged.{pid,log,seed}
#   slurm/        state/, spool/<node>/, slurmctld.log, slurmd.<node>.log, *.out (stderr)
#
# Node names: Slurm puts them in SLURM_JOB_NODELIST, and code under test resolves them
# (getaddrinfo) to reach rank 0, so both must resolve to an address of this machine without
# editing /etc/hosts. Taken from $CLUSTER_NODES ("a b") if set, else the first two of: the
# short hostname, `localhost`, other names in the hosts database; each must resolve to a
# loopback address or one of `hostname -I`. Every node has NodeAddr=127.0.0.1.
#
# Needs root, munge (munged, mungekey or dd) and slurm-wlm (Debian 12: built with
# --enable-multiple-slurmd, which several slurmd on one host need).
set -Eeuo pipefail
# set -e alone stops silently; name the command that failed.
trap 'echo "slurm_cluster: failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
export PATH="$PATH:/usr/sbin:/sbin" # the daemons live there; callers' PATH goes first

readonly READY_TIMEOUT_S=30 # both nodes idle within this
readonly STOP_TIMEOUT_S=10  # a daemon must exit within this of SIGTERM, or is KILLed
readonly JOBS_TIMEOUT_S=15  # cancelled jobs (and their slurmstepd) must be gone within this

die() {
  echo "slurm_cluster: $*" >&2
  exit 1
}

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# Appends NAME=value to cluster.env right away, so a failure after this point is undone.
record() { printf '%s=%q\n' "$1" "$2" >>"$DIR/cluster.env"; }

# True while PID runs a program started with one of this cluster's files as an argument:
# a pid recorded earlier may have been reused by an unrelated process since.
pid_is_ours() {
  local pid=$1 cmd
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmd == *"$DIR/"* ]] # a zombie has an empty cmdline: gone, as far as we care
}

# "SID PGID" of PID, or nothing when it is gone. comm (field 2) may hold spaces and ')'.
sid_pgid() {
  local stat rest state pgrp sid
  { stat=$(<"/proc/$1/stat"); } 2>/dev/null || return 0
  rest=${stat##*) }
  read -r state _ pgrp sid _ <<<"$rest" # state ppid pgrp session ...
  [[ $state == Z ]] || echo "$sid $pgrp"
}

# This cluster's slurmstepd processes: slurmd passes them its environment, SLURM_CONF
# included (their command line is just "slurmstepd: [job.step]").
our_stepds() {
  local p pid exe
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    [[ ${exe##*/} == slurmstepd* ]] || continue
    grep -qzxF "SLURM_CONF=$DIR/slurm.conf" "$p/environ" 2>/dev/null && echo "$pid"
  done
  return 0
}

# ---------------------------------------------------------------------------------------
# up

# True when NAME resolves to at least one address of this machine.
is_local_name() {
  local name=$1 addr locals
  locals=" $(hostname -I 2>/dev/null || true) "
  while read -r addr _; do
    [[ $addr == 127.* || $addr == ::1 || $locals == *" $addr "* ]] && return 0
  done < <(getent ahosts "$name" 2>/dev/null || true)
  return 1
}

pick_nodes() {
  local candidates=() name seen=" "
  if [[ -n ${CLUSTER_NODES:-} ]]; then
    read -r -a candidates <<<"$CLUSTER_NODES"
    ((${#candidates[@]} == 2)) || die "CLUSTER_NODES must name two nodes: '$CLUSTER_NODES'"
  else
    candidates=("$(hostname -s 2>/dev/null || true)" localhost)
    # Every other name in the hosts database (`getent hosts` with no key lists them).
    local line aliases
    while read -r _ line; do
      read -r -a aliases <<<"$line"
      candidates+=("${aliases[@]}")
    done < <(getent hosts 2>/dev/null || true)
  fi
  NODES=()
  for name in "${candidates[@]}"; do
    ((${#NODES[@]} < 2)) || break
    [[ $seen != *" ${name,,} "* ]] || continue
    # A Slurm node name: no dots (short names only), nothing hostlist syntax would split.
    if [[ ! $name =~ ^[A-Za-z][A-Za-z0-9-]{0,62}$ ]]; then
      [[ -z ${CLUSTER_NODES:-} ]] || die "CLUSTER_NODES: '$name' is no short host name"
      continue
    fi
    if is_local_name "$name"; then
      NODES+=("$name")
      seen+="${name,,} "
    elif [[ -n ${CLUSTER_NODES:-} ]]; then
      die "CLUSTER_NODES: '$name' does not resolve to an address of this machine"
    fi
  done
  ((${#NODES[@]} == 2)) ||
    die "need two node names that resolve to this machine; found: ${NODES[*]:-none}" \
      "(set CLUSTER_NODES=\"a b\")"
}

# N distinct TCP ports that nothing uses now, below the ephemeral range (so connections the
# daemons make do not take them), from /proc/net/tcp{,6}: works without python or ss.
pick_ports() {
  local n=$1 used=" " port tries=0 _sl local_address _rest
  # Column 2 is ADDR:PORT in hex, for every socket in any state (listening or connected).
  while read -r _sl local_address _rest; do
    [[ $local_address == *:* ]] && used+="$((16#${local_address##*:})) "
  done < <(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | tail -n +2 || true)
  PORTS=()
  while ((${#PORTS[@]} < n)); do
    ((tries++ < 1000)) || die "no free TCP port found"
    port=$((20000 + RANDOM % 12000))
    [[ $used == *" $port "* ]] && continue
    used+="$port "
    PORTS+=("$port")
  done
}

start_munged() {
  local m=$DIR/munge
  mkdir -p "$m"
  # munged refuses a socket whose directories are not executable by all, and files in
  # directories that others may write to.
  chmod 0755 "$DIR" "$m"
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile="$m/munge.key" --force
  else
    dd if=/dev/urandom of="$m/munge.key" bs=128 count=1 status=none
  fi
  chmod 0400 "$m/munge.key"
  # Without -F munged forks into its own session and its parent exits only once the socket
  # is being served (or with an error): that exit is the readiness signal.
  munged --socket="$m/munge.sock" --key-file="$m/munge.key" --pid-file="$m/munged.pid" \
    --log-file="$m/munged.log" --seed-file="$m/munged.seed" </dev/null >"$m/munged.out" 2>&1 ||
    die "munged failed to start: $(tail -n 5 "$m/munged.out")"
  record CLUSTER_MUNGED_PID "$(<"$m/munged.pid")"
  pid_is_ours "$(<"$m/munged.pid")" || die "munged exited after starting"
  munge --socket="$m/munge.sock" --no-input | unmunge --socket="$m/munge.sock" >/dev/null ||
    die "munged serves no valid credentials"
}

write_conf() {
  local s=$DIR/slurm i name nodes=()
  mkdir -p "$s/state" "$s/spool"
  pick_ports 3
  CTLD_PORT=${PORTS[0]}
  # Quirk of Slurm 22.05: while it builds its node table, a lookup of any name in a table
  # holding one node called "localhost" returns that node, so a node listed after
  # "localhost" is refused as a duplicate. List "localhost" last.
  for name in "${NODES[@]}"; do [[ $name == localhost ]] || nodes+=("$name"); done
  for name in "${NODES[@]}"; do [[ $name != localhost ]] || nodes+=("$name"); done
  {
    cat <<EOF
# Written by tests/integration/slurm/slurm_cluster.sh: a two-node test cluster on one host.
ClusterName=cvytest
SlurmctldHost=$(hostname -s)
SlurmctldPort=$CTLD_PORT
SlurmdPort=${PORTS[1]}
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$s/state
SlurmdSpoolDir=$s/spool/%n
SlurmctldPidFile=$s/slurmctld.pid
SlurmdPidFile=$s/slurmd.%n.pid
SlurmctldLogFile=$s/slurmctld.log
SlurmdLogFile=$s/slurmd.%n.log
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# The default (/bin/mail) does not exist here; slurmctld logs an error for it.
MailProg=/bin/true
# Seconds between SIGTERM and SIGKILL for a cancelled job's tasks (default 30): keeps
# \`down\` short.
KillWait=2
EOF
    # NodeHostname is the node's own name: a NodeName that is another node's NodeHostname
    # is refused as a duplicate. NodeAddr (what slurmctld and srun connect to) is loopback.
    for i in 0 1; do
      echo "NodeName=${nodes[i]} NodeHostname=${nodes[i]} NodeAddr=127.0.0.1" \
        "Port=${PORTS[i + 1]} CPUs=2 State=UNKNOWN"
    done
    echo "PartitionName=test Nodes=${nodes[0]},${nodes[1]} Default=YES MaxTime=INFINITE State=UP"
  } >"$DIR/slurm.conf"
}

# Starts a daemon in the foreground (-D) in its own session (setsid: the script's process
# group and the caller's pipes stay free of it), stderr to slurm/NAME.out. setsid execs in
# place (a background job of a script is no process group leader), so $! is the daemon.
start_daemon() {
  local name=$1 var=$2
  shift 2
  setsid "$@" </dev/null >"$DIR/slurm/$name.out" 2>&1 &
  record "$var" "$!"
}

# Polls `sinfo` until both nodes are idle; fails at once when a daemon has died.
wait_idle() {
  local deadline=$(($(now_ms) + READY_TIMEOUT_S * 1000)) states pid
  for (( ; ; )); do
    states=$(sinfo --noheader --Node --format='%N %t' 2>/dev/null || true)
    [[ $(grep -cE '^[^ ]+ idle$' <<<"$states") == 2 ]] && return 0
    for pid in "$CLUSTER_SLURMCTLD_PID" "$CLUSTER_SLURMD_PID_0" "$CLUSTER_SLURMD_PID_1"; do
      pid_is_ours "$pid" || die "a daemon (pid $pid) exited while starting"
    done
    (($(now_ms) < deadline)) ||
      die "nodes not idle within ${READY_TIMEOUT_S}s; sinfo: ${states//$'\n'/; }"
    sleep 0.2
  done
}

print_logs() {
  local f
  for f in "$DIR"/munge/munged.out "$DIR"/munge/munged.log "$DIR"/slurm/*.out \
    "$DIR"/slurm/*.log; do
    [[ -s $f ]] || continue
    # A daemon's stderr repeats its log file once that is open: show it only before.
    [[ $f == *.out && -s ${f%.out}.log ]] && continue
    echo "--- tail of $f"
    tail -n 15 "$f"
  done >&2
}

on_up_exit() {
  local rc=$1
  trap - EXIT
  ((rc == 0)) && return 0
  print_logs
  do_down || true
  exit "$rc"
}

do_up() {
  [[ $(id -u) == 0 ]] || die "must run as root (SlurmUser=root, slurmd)"
  [[ ! -e $DIR/cluster.env ]] || die "$DIR/cluster.env exists: already up (run down first)"
  trap 'on_up_exit $?' EXIT
  # A fresh cluster every time: no jobs or node states recovered from an earlier one here.
  rm -rf "$DIR/munge" "$DIR/slurm" "$DIR/slurm.conf" "$DIR/cluster.env.down"
  export SLURM_CONF=$DIR/slurm.conf
  record SLURM_CONF "$SLURM_CONF"
  pick_nodes
  start_munged
  write_conf
  start_daemon slurmctld CLUSTER_SLURMCTLD_PID slurmctld -D -f "$SLURM_CONF"
  start_daemon "slurmd.${NODES[0]}" CLUSTER_SLURMD_PID_0 slurmd -D -N "${NODES[0]}" -f "$SLURM_CONF"
  start_daemon "slurmd.${NODES[1]}" CLUSTER_SLURMD_PID_1 slurmd -D -N "${NODES[1]}" -f "$SLURM_CONF"
  # shellcheck source=/dev/null
  source "$DIR/cluster.env"
  wait_idle
  # Slurm's own order (its node table, which it sorts by name): a job on both nodes lists
  # them in SLURM_JOB_NODELIST in this order and runs task 0 on the first.
  local order
  mapfile -t order < <(scontrol --oneliner show node | sed -n 's/^NodeName=\([^ ]*\) .*/\1/p')
  ((${#order[@]} == 2)) || die "scontrol lists ${#order[@]} nodes, not 2"
  record CLUSTER_NODE_0 "${order[0]}"
  record CLUSTER_NODE_1 "${order[1]}"
  trap - EXIT
}

# ---------------------------------------------------------------------------------------
# down

# Waits until none of the pids is ours any more, or the deadline; true when all are gone.
wait_gone() {
  local deadline=$(($(now_ms) + $1 * 1000)) pid alive
  shift
  for (( ; ; )); do
    alive=0
    for pid in "$@"; do pid_is_ours "$pid" && alive=1; done
    ((alive)) || return 0
    (($(now_ms) < deadline)) || return 1
    sleep 0.1
  done
}

# TERMs the "NAME:PID"s given, KILLs those still running STOP_TIMEOUT_S later.
stop_daemons() {
  local entry pids=()
  for entry in "$@"; do
    pid_is_ours "${entry#*:}" || continue
    kill -TERM "${entry#*:}" 2>/dev/null || true
    pids+=("${entry#*:}")
  done
  ((${#pids[@]})) || return 0
  wait_gone "$STOP_TIMEOUT_S" "${pids[@]}" && return 0
  for entry in "$@"; do
    pid_is_ours "${entry#*:}" || continue
    kill -KILL "${entry#*:}" 2>/dev/null || true
    echo "slurm_cluster: KILLED ${entry%%:*} (pid ${entry#*:}): still running ${STOP_TIMEOUT_S}s after SIGTERM"
  done
  wait_gone 5 "${pids[@]}" || echo "slurm_cluster: pids ${pids[*]} survive SIGKILL" >&2
}

# Cancels every job of the cluster and waits (bounded) until they and their steps are gone.
cancel_jobs() {
  pid_is_ours "${CLUSTER_SLURMCTLD_PID:-}" || return 0
  local jobs=() deadline=$(($(now_ms) + JOBS_TIMEOUT_S * 1000))
  mapfile -t jobs < <(timeout 10 squeue --noheader --all --format=%A 2>/dev/null || true)
  ((${#jobs[@]} == 0)) || timeout 10 scancel "${jobs[@]}" 2>/dev/null || true
  while [[ -n $(timeout 5 squeue --noheader --all --format=%A 2>/dev/null || true) ||
    -n $(our_stepds) ]]; do
    (($(now_ms) < deadline)) || return 0 # what is left gets KILLed below
    sleep 0.2
  done
}

# KILLs every process left in a daemon's session or process group, and every slurmstepd of
# this cluster with everything in its session (its tasks).
kill_leftovers() {
  local groups=" " pid ids sid pgid victims=() stepd cmd
  for pid in "${CLUSTER_MUNGED_PID:-}" "${CLUSTER_SLURMCTLD_PID:-}" "${CLUSTER_SLURMD_PID_0:-}" \
    "${CLUSTER_SLURMD_PID_1:-}"; do
    # Each daemon leads its own session (sid == pgid == pid). Its number cannot be reused
    # while the session has members, so it names this cluster's session if the leader is
    # ours or gone; a live process of someone else's under that number means it was reused.
    [[ -n $pid ]] || continue
    if pid_is_ours "$pid" || [[ ! -e /proc/$pid ]]; then groups+="$pid "; fi
  done
  for stepd in $(our_stepds); do
    victims+=("$stepd")
    ids=$(sid_pgid "$stepd")
    [[ -n $ids ]] && groups+="${ids%% *} "
  done
  [[ $groups != " " ]] || return 0
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    ((pid != $$)) || continue
    ids=$(sid_pgid "$pid")
    [[ -n $ids ]] || continue
    read -r sid pgid <<<"$ids"
    [[ $groups == *" $sid "* || $groups == *" $pgid "* ]] && victims+=("$pid")
  done
  ((${#victims[@]})) || return 0
  local killed=()
  for pid in $(printf '%s\n' "${victims[@]}" | sort -un); do
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || continue
    [[ -n $cmd ]] || continue # a zombie: its parent reaps it
    kill -KILL "$pid" 2>/dev/null || continue
    killed+=("$pid")
    echo "slurm_cluster: KILLED leftover pid $pid: ${cmd%"${cmd##*[! ]}"}"
  done
  # SIGKILL takes effect asynchronously; return once they are dead (zombies at most).
  local deadline=$(($(now_ms) + 5000)) alive
  for (( ; ; )); do
    alive=()
    for pid in "${killed[@]}"; do [[ -n $(sid_pgid "$pid") ]] && alive+=("$pid"); done
    ((${#alive[@]})) || return 0
    (($(now_ms) < deadline)) || break
    sleep 0.1
  done
  echo "slurm_cluster: pids ${alive[*]} survive SIGKILL" >&2
}

do_down() {
  [[ -f $DIR/cluster.env ]] || return 0
  # shellcheck source=/dev/null
  source "$DIR/cluster.env"
  export SLURM_CONF=${SLURM_CONF:-$DIR/slurm.conf}
  cancel_jobs
  stop_daemons "slurmd ${CLUSTER_NODE_0:-0}:${CLUSTER_SLURMD_PID_0:-}" \
    "slurmd ${CLUSTER_NODE_1:-1}:${CLUSTER_SLURMD_PID_1:-}"
  stop_daemons "slurmctld:${CLUSTER_SLURMCTLD_PID:-}"
  stop_daemons "munged:${CLUSTER_MUNGED_PID:-}"
  kill_leftovers
  mv -f "$DIR/cluster.env" "$DIR/cluster.env.down" # a second `down` has nothing to do
}

# ---------------------------------------------------------------------------------------

# Prints why this machine cannot run the cluster and fails, or succeeds silently.
do_check() {
  local tool missing=() help
  [[ $(id -u) == 0 ]] || die "needs root (SlurmUser=root, slurmd)"
  for tool in munged munge unmunge slurmctld slurmd slurmstepd srun sbatch sinfo squeue \
    scancel scontrol getent setsid hostname timeout; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) ||
    die "missing ${missing[*]} (apt-get install slurm-wlm munge)"
  help=$(slurmd -h 2>&1 || true)
  [[ $help == *" -N "* ]] || die "this slurmd has no -N option (one slurmd per host only)"
  [[ -z ${SLURM_JOB_ID:-} ]] ||
    die "running inside Slurm job $SLURM_JOB_ID: srun and sbatch would use that job"
  pick_nodes
}

usage() { die "usage: slurm_cluster.sh up DIR | down DIR | check"; }

if [[ ${1:-} == check && $# == 1 ]]; then
  do_check
  exit 0
fi
(($# == 2)) || usage
[[ $2 != *[[:space:]]* ]] || die "DIR must not contain whitespace (slurm.conf paths): '$2'"
[[ $1 != down || -d $2 ]] || exit 0 # nothing was ever started there
mkdir -p "$2"
DIR=$(cd "$2" && pwd -P)
case $1 in
  up) do_up ;;
  down) do_down ;;
  *) usage ;;
esac
