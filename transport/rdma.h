// RDMA discovery with libibverbs: devices, ports, link state, rate and GIDs.
// Works (returns an empty list with a reason) on machines without RDMA hardware or
// without any verbs provider. Blocking (opens each device briefly); thread-safe.
#pragma once

#include <string>
#include <vector>

namespace conveyor::transport::rdma {

struct Gid {
  int index = 0;
  std::string address;  // "fe80:0000:...:0001"
};

struct Port {
  int number = 0;
  std::string state;       // "ACTIVE", "DOWN", ...
  std::string link_layer;  // "InfiniBand" or "Ethernet"
  int width = 0;           // lanes (1, 2, 4, 8, 12)
  double gbps_per_lane = 0;
  double rate_gbps() const { return width * gbps_per_lane; }
  int lid = 0;
  std::vector<Gid> gids;  // the non-zero entries of the GID table
};

struct Device {
  std::string name;  // "mlx5_0"
  std::string node_guid;
  int numa_node = -1;       // from sysfs, -1 when unknown
  std::string pci_address;  // from sysfs, empty when unknown
  std::vector<Port> ports;
};

struct Discovery {
  std::vector<Device> devices;
  std::string note;  // why the list is empty, or problems met on the way
};

Discovery discover();

// The active port (name:port, UCX_NET_DEVICES syntax) for local rank `local_rank` whose GPU
// is on `gpu_numa_node` (-1: no GPU, or unknown): among the active ports on that NUMA node
// (any active port when none is), the fastest; several equally fast ones are dealt out by
// local rank in name order, so the ranks of a host spread over its NICs. Empty when no port
// is active.
std::string pick_net_device(const Discovery& d, int gpu_numa_node, int local_rank = 0);

}  // namespace conveyor::transport::rdma
