#!/usr/bin/env bash
# N fake "hosts" for multi-host launcher tests: Linux network namespaces joined by a bridge,
# each running its own OpenSSH sshd. Must run as root.
#
#   netns_hosts.sh up N DIR        create the hosts; returns once every sshd serves host 0
#                                  (SSH banner) and a root login from host 0 works
#   netns_hosts.sh down DIR        kill everything in them and delete them (idempotent)
#   netns_hosts.sh exec I CMD...   run CMD in host I's namespace; the fixture's DIR comes
#                                  from $NETNS_HOSTS_DIR (or: exec DIR I CMD...)
#
# Layout (id is unique per fixture, 20..219, derived from $$ so fixtures can run at once):
#   namespace cvy<id>sw      a bridge br0, with port h<i> for every host
#   namespace cvy<id>h<i>    eth0 = 10.251.<id>.<1+i>/24 (the other end of h<i>), lo up, and
#                            /usr/sbin/sshd on that address, port 22 (config DIR/sshd_config.<i>,
#                            log DIR/sshd.<i>.log, pid file DIR/sshd.<i>.pid)
# Nothing is added to the root namespace: veths are created directly inside the namespaces.
#
# Files in DIR after `up`:
#   ssh_config        client config (key, batch mode, no host key checks, keepalives): use
#                     `ssh -F DIR/ssh_config ADDR CMD` from inside any host
#   id_ed25519[.pub]  the client key, authorized for root through DIR/authorized_keys
#   hosts.env         NETNS_HOSTS_ID, NETNS_HOSTS_N, NETNS_SWITCH, NETNS_HOST_<i>, NETNS_ADDR_<i>
#                     (sourceable; written as resources are made, so `down` can undo a
#                     half-finished `up`; renamed hosts.env.down once torn down)
#   hostfile          "<ip> slots=2" per host (DeepSpeed hostfile style)
#
# `down` prints "netns_hosts: leftover in NS: PID CMD; ..." for every namespace that still
# had processes besides its sshd listener, so a test can tell something was left behind.
set -Eeuo pipefail
# set -e alone stops silently; name the command that failed.
trap 'echo "netns_hosts: failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
export PATH="$PATH:/usr/sbin:/sbin" # ip and sshd live there; callers' PATH goes first

readonly SSHD=/usr/sbin/sshd
readonly READY_TIMEOUT_S=10 # every sshd must serve within this
readonly KILL_TIMEOUT_S=5   # killed processes must be gone within this

die() {
  echo "netns_hosts: $*" >&2
  exit 1
}

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# Appends NAME=value to hosts.env right away, so a failure after this point is undone.
record() { printf '%s=%q\n' "$1" "$2" >>"$DIR/hosts.env"; }

ns_exists() { [[ -e /run/netns/$1 ]]; }

# Picks a free id and claims it by creating its switch namespace: `ip netns add` creates
# /run/netns/NAME with O_EXCL, so two fixtures racing for one id cannot both win.
claim_id() {
  local n=$1 base=$(($$ % 200)) try id i taken err
  for ((try = 0; try < 200; try++)); do
    id=$(((base + try) % 200 + 20))
    # A subnet some root-namespace interface already uses would make addresses ambiguous.
    [[ -z $(ip -4 -o addr show to "10.251.$id.0/24") ]] || continue
    if ! err=$(ip netns add "cvy${id}sw" 2>&1); then
      [[ $err == *"File exists"* ]] || die "cannot create a network namespace: $err"
      continue
    fi
    taken=0 # stale host namespaces of a fixture that died without `down`
    for ((i = 0; i < n; i++)); do
      if ns_exists "cvy${id}h$i"; then taken=1; fi
    done
    if ((taken == 0)); then
      ID=$id
      return 0
    fi
    ip netns del "cvy${id}sw"
  done
  die "no free id: every cvy<20..219>sw namespace or 10.251.<id>.0/24 subnet is taken"
}

write_sshd_config() { # i addr
  cat >"$DIR/sshd_config.$1" <<EOF
# sshd of fake host $1 (netns_hosts.sh); root logs in with DIR/id_ed25519 only.
ListenAddress $2:22
AddressFamily inet
HostKey $DIR/ssh_host_ed25519_key
PidFile $DIR/sshd.$1.pid
AuthorizedKeysFile $DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# DIR lives under /tmp, whose modes StrictModes would reject.
StrictModes no
# A dead link ends the session within about 3 s.
ClientAliveInterval 1
ClientAliveCountMax 3
# A launcher may open many sessions at once; the default (10:30:100) drops some at random.
MaxStartups 100
MaxSessions 100
PrintMotd no
PrintLastLog no
X11Forwarding no
LogLevel INFO
EOF
}

write_client_config() {
  cat >"$DIR/ssh_config" <<EOF
# ssh client config for the fake hosts of netns_hosts.sh.
Host *
  IdentityFile $DIR/id_ed25519
  IdentitiesOnly yes
  BatchMode yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  ConnectTimeout 5
  ServerAliveInterval 1
  ServerAliveCountMax 3
EOF
}

# Whether host $1's sshd, seen from host 0 across the bridge, sends its SSH banner (the
# listener accepted and its re-executed child is serving): milliseconds, not a full login.
banner_ok() {
  # shellcheck disable=SC2016 # $1 and $line belong to the inner bash
  ip netns exec "cvy${ID}h0" timeout 2 bash -c \
    'exec 3<>"/dev/tcp/$1/22" && IFS= read -r -t 2 line <&3 && [[ $line == SSH-* ]]' \
    _ "10.251.$ID.$((1 + $1))" >"$DIR/ready.$1.err" 2>&1
}

# Whether a real login from host 0 to host $1 works (bridge, listener, key and config).
login_ok() {
  if ip netns exec "cvy${ID}h0" ssh -F "$DIR/ssh_config" -o ConnectTimeout=2 \
    "10.251.$ID.$((1 + $1))" true >"$DIR/ready.$1.err" 2>&1; then
    return 0
  fi
  # A refused key is no readiness problem: waiting cannot fix it.
  if grep -q 'Permission denied' "$DIR/ready.$1.err"; then
    die "sshd of host $1 refuses the client key: $(tail -n 3 "$DIR/ready.$1.err");" \
      "sshd log: $(tail -n 5 "$DIR/sshd.$1.log" 2>/dev/null)"
  fi
  return 1
}

# Polls, from host 0 (as the launcher will), until every sshd serves connections, then
# until one full login succeeds (a login costs ~0.3 s; the configs differ only in address
# and pid file, and `sshd -t` checked each one).
wait_for_sshd() {
  local n=$1 deadline=$(($(now_ms) + READY_TIMEOUT_S * 1000)) i pending=() check=banner_ok
  for ((i = 0; i < n; i++)); do pending+=("$i"); done
  while :; do
    local still=()
    for i in "${pending[@]}"; do
      if ! "$check" "$i"; then still+=("$i"); fi
    done
    pending=("${still[@]+"${still[@]}"}")
    if ((${#pending[@]} == 0)); then
      [[ $check == banner_ok ]] || break
      check=login_ok
      pending=($((n - 1))) # the farthest host: its login crosses the bridge
      continue
    fi
    if (($(now_ms) > deadline)); then
      i=${pending[0]}
      die "sshd of host $i (10.251.$ID.$((1 + i))) does not serve logins after ${READY_TIMEOUT_S} s;" \
        "client said: $(tail -n 3 "$DIR/ready.$i.err"); sshd log: $(tail -n 5 "$DIR/sshd.$i.log" 2>/dev/null)"
    fi
    sleep 0.05 # poll interval, not a synchronisation point
  done
  rm -f "$DIR"/ready.*.err
}

cmd_up() {
  (($# == 2)) || die "usage: netns_hosts.sh up N DIR"
  local n=$1 i
  if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 253)); then die "N must be 1..253, not '$n'"; fi
  ((EUID == 0)) || die "must run as root"
  [[ -x $SSHD ]] || die "$SSHD not found (apt-get install openssh-server)"
  mkdir -p "$2"
  DIR=$(realpath "$2")
  [[ $DIR != *[[:space:]]* ]] || die "DIR must not contain white space (sshd_config): '$DIR'"
  [[ ! -e $DIR/hosts.env ]] || die "$DIR/hosts.env exists: run down first"

  # From here on, any failure tears down whatever was made.
  trap 'rc=$?; if ((rc != 0)); then echo "netns_hosts: up failed; tearing down" >&2; cmd_down "$DIR" >&2 || true; fi' EXIT

  claim_id "$n"
  local sw="cvy${ID}sw"
  rm -f "$DIR/hosts.env.down"
  record NETNS_HOSTS_ID "$ID"
  record NETNS_SWITCH "$sw"
  ip -n "$sw" link set lo up
  ip -n "$sw" link add br0 type bridge # STP off (the default): ports forward at once
  ip -n "$sw" link set br0 up

  rm -f "$DIR/ssh_host_ed25519_key"* "$DIR/id_ed25519"* "$DIR/hostfile"
  # One host key for all hosts: clients do not check it, and ssh-keygen costs time.
  ssh-keygen -q -t ed25519 -N '' -C conveyor-netns-host -f "$DIR/ssh_host_ed25519_key"
  ssh-keygen -q -t ed25519 -N '' -C conveyor-netns-client -f "$DIR/id_ed25519"
  cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
  write_client_config
  mkdir -p /run/sshd # sshd's privilege-separation directory

  for ((i = 0; i < n; i++)); do
    local h="cvy${ID}h$i" addr="10.251.$ID.$((1 + i))"
    ip netns add "$h"
    record "NETNS_HOST_$i" "$h"
    record "NETNS_ADDR_$i" "$addr"
    ip link add eth0 netns "$h" type veth peer name "h$i" netns "$sw"
    ip -n "$sw" link set "h$i" master br0 up
    ip -n "$h" link set lo up
    ip -n "$h" addr add "$addr/24" dev eth0
    ip -n "$h" link set eth0 up
    write_sshd_config "$i" "$addr"
    "$SSHD" -t -f "$DIR/sshd_config.$i" || die "sshd rejects $DIR/sshd_config.$i"
    # sshd daemonises (setsid, stdio to /dev/null), so it holds none of our pipes; -E
    # sends its log to a file.
    ip netns exec "$h" "$SSHD" -f "$DIR/sshd_config.$i" -E "$DIR/sshd.$i.log"
    echo "$addr slots=2" >>"$DIR/hostfile"
  done
  record NETNS_HOSTS_N "$n"
  wait_for_sshd "$n"
  trap - EXIT
}

# Waits until none of the given pids runs (zombies count as gone); returns 1 at the deadline.
wait_gone() {
  local deadline=$(($(now_ms) + KILL_TIMEOUT_S * 1000)) p alive
  while :; do
    alive=0
    for p in "$@"; do
      if [[ -e /proc/$p && $(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) != Z ]]; then alive=1; fi
    done
    if ((alive == 0)); then return 0; fi
    if (($(now_ms) > deadline)); then return 1; fi
    sleep 0.02
  done
}

# Kills every process in namespace $1 (after its sshd listener, whose pid file is $2);
# prints a line naming what was left besides the listener.
kill_namespace() {
  local ns=$1 pidfile=${2:-} pid pids desc
  ns_exists "$ns" || return 0
  if [[ -n $pidfile && -s $pidfile ]]; then
    pid=$(<"$pidfile")
    # Only if that pid is still our sshd: pids are reused.
    if [[ $pid =~ ^[0-9]+$ && $(ip netns identify "$pid" 2>/dev/null) == "$ns" ]]; then
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" || echo "netns_hosts: sshd $pid in $ns survives SIGKILL" >&2
    fi
  fi
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  [[ -n $pids ]] || return 0
  desc=""
  for pid in $pids; do
    desc+="$pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | head -c 200); "
  done
  echo "netns_hosts: leftover in $ns: ${desc%; }"
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  # shellcheck disable=SC2086
  wait_gone $pids || echo "netns_hosts: processes in $ns survive SIGKILL: $(ip netns pids "$ns")" >&2
}

cmd_down() {
  (($# == 1)) || die "usage: netns_hosts.sh down DIR"
  local dir=$1 i h
  [[ -f $dir/hosts.env ]] || return 0 # never brought up, or already down
  # Only the names recorded by `up` are touched; parsed, not sourced, so a damaged file
  # cannot run anything.
  local -A env=()
  local key value
  while IFS='=' read -r key value; do
    if [[ $key =~ ^NETNS_[A-Z0-9_]+$ && $value =~ ^[A-Za-z0-9.]+$ ]]; then env[$key]=$value; fi
  done <"$dir/hosts.env"
  for ((i = 0; ; i++)); do
    h=${env[NETNS_HOST_$i]:-}
    [[ -n $h ]] || break
    kill_namespace "$h" "$dir/sshd.$i.pid"
  done
  [[ -z ${env[NETNS_SWITCH]:-} ]] || kill_namespace "${env[NETNS_SWITCH]}"
  for ((i = 0; ; i++)); do
    h=${env[NETNS_HOST_$i]:-}
    [[ -n $h ]] || break
    if ns_exists "$h"; then
      ip -n "$h" link del eth0 2>/dev/null || true # takes its peer in the switch along
      ip netns del "$h"
    fi
  done
  if [[ -n ${env[NETNS_SWITCH]:-} ]] && ns_exists "${env[NETNS_SWITCH]}"; then
    ip netns del "${env[NETNS_SWITCH]}"
  fi
  # A second `down` must not touch namespaces a later fixture may have made with these names.
  mv -f "$dir/hosts.env" "$dir/hosts.env.down"
}

cmd_exec() {
  local dir=${NETNS_HOSTS_DIR:-}
  if (($# >= 2)) && [[ -f $1/hosts.env ]]; then
    dir=$1
    shift
  fi
  (($# >= 2)) || die "usage: netns_hosts.sh exec I CMD... (with NETNS_HOSTS_DIR=DIR) or exec DIR I CMD..."
  [[ -n $dir && -f $dir/hosts.env ]] || die "no hosts.env: set NETNS_HOSTS_DIR to the fixture's DIR"
  local i=$1 h
  shift
  [[ $i =~ ^[0-9]+$ ]] || die "host index must be a number, not '$i'"
  h=$(sed -n "s/^NETNS_HOST_$i=//p" "$dir/hosts.env")
  [[ -n $h ]] || die "no host $i in $dir/hosts.env"
  exec ip netns exec "$h" "$@"
}

case ${1:-} in
up) shift && cmd_up "$@" ;;
down) shift && cmd_down "$@" ;;
exec) shift && cmd_exec "$@" ;;
*) die "usage: netns_hosts.sh up N DIR | down DIR | exec I CMD..." ;;
esac
