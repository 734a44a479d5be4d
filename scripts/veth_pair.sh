# Two network namespaces joined by one veth pair: two "hosts" and the link between them, for
# the benchmarks and tests that need them (bench/shaped_link.sh,
# tests/integration/transport/busy_link.sh). Source it (bash), as root, then:
#
#   veth_pair_up NS_A NS_B ADDR_A ADDR_B   creates both namespaces with veth0 in each
#                                          (ADDR/24), brings lo and veth0 up and waits, 5 s at
#                                          most, until both ends have carrier (UCX lists only
#                                          devices that are up and running); returns 1 if they
#                                          do not come up
#   veth_pair_down NS_A NS_B               deletes both namespaces (idempotent)

veth_pair_up() {
  local ns_a=$1 ns_b=$2 addr_a=$3 addr_b=$4 ns up tries
  ip netns add "$ns_a"
  ip netns add "$ns_b"
  ip -n "$ns_a" link add veth0 type veth peer name veth0 netns "$ns_b"
  ip -n "$ns_a" addr add "$addr_a/24" dev veth0
  ip -n "$ns_b" addr add "$addr_b/24" dev veth0
  for ns in "$ns_a" "$ns_b"; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link set veth0 up
  done
  for ((tries = 0; tries < 50; tries++)); do
    up=0
    for ns in "$ns_a" "$ns_b"; do
      [[ $(ip -n "$ns" -br link show veth0) == *" UP "* ]] && up=$((up + 1))
    done
    ((up == 2)) && return 0
    sleep 0.1
  done
  echo "veth_pair: the veth pair between $ns_a and $ns_b did not come up" >&2
  return 1
}

veth_pair_down() {
  ip netns del "$1" 2>/dev/null || true
  ip netns del "$2" 2>/dev/null || true
}
