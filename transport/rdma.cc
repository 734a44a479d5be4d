#include "transport/rdma.h"

#include <algorithm>
#include <tuple>

#include <infiniband/verbs.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include <fmt/format.h>

namespace conveyor::transport::rdma {
namespace {

double lane_gbps(uint8_t speed) {
  switch (speed) {  // ibv_port_attr.active_speed encodings
    case 1:
      return 2.5;  // SDR
    case 2:
      return 5.0;  // DDR
    case 4:
      return 10.0;  // QDR (also FDR10 with 8)
    case 8:
      return 10.3125;
    case 16:
      return 14.0625;  // FDR
    case 32:
      return 25.78125;  // EDR
    case 64:
      return 53.125;  // HDR
    case 128:
      return 106.25;  // NDR
    default:
      return 0;
  }
}

int lanes(uint8_t width) {
  switch (width) {
    case 1:
      return 1;
    case 2:
      return 4;
    case 4:
      return 8;
    case 8:
      return 12;
    case 16:
      return 2;
    default:
      return 0;
  }
}

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

std::string format_gid(const ibv_gid& g) {
  std::string out;
  for (int i = 0; i < 16; i += 2) {
    if (i) out += ':';
    out += fmt::format("{:02x}{:02x}", g.raw[i], g.raw[i + 1]);
  }
  return out;
}

}  // namespace

Discovery discover() {
  Discovery d;
  int n = 0;
  errno = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (list == nullptr) {
    d.note = fmt::format("libibverbs found no RDMA support ({})",
                         errno ? std::strerror(errno) : "no devices");
    return d;
  }
  std::unique_ptr<ibv_device*, void (*)(ibv_device**)> guard(list, ibv_free_device_list);
  for (int i = 0; i < n; ++i) {
    Device dev;
    dev.name = ibv_get_device_name(list[i]);
    dev.node_guid = fmt::format("{:016x}", be64toh(ibv_get_device_guid(list[i])));
    std::string sys = std::string("/sys/class/infiniband/") + dev.name + "/device";
    if (auto numa = read_line(sys + "/numa_node"); !numa.empty())
      dev.numa_node = std::atoi(numa.c_str());
    if (auto uevent = std::ifstream(sys + "/uevent")) {
      std::string line;
      while (std::getline(uevent, line))
        if (line.rfind("PCI_SLOT_NAME=", 0) == 0) dev.pci_address = line.substr(14);
    }
    ibv_context* ctx = ibv_open_device(list[i]);
    if (ctx == nullptr) {
      d.note += fmt::format("cannot open {}: {}; ", dev.name, std::strerror(errno));
      d.devices.push_back(dev);
      continue;
    }
    ibv_device_attr attr{};
    if (ibv_query_device(ctx, &attr) == 0) {
      for (int p = 1; p <= attr.phys_port_cnt; ++p) {
        ibv_port_attr pa{};
        if (ibv_query_port(ctx, static_cast<uint8_t>(p), &pa) != 0) continue;
        Port port;
        port.number = p;
        port.state = ibv_port_state_str(pa.state);
        port.link_layer = pa.link_layer == IBV_LINK_LAYER_ETHERNET ? "Ethernet" : "InfiniBand";
        port.width = lanes(pa.active_width);
        port.gbps_per_lane = lane_gbps(pa.active_speed);
        port.lid = pa.lid;
        for (int g = 0; g < pa.gid_tbl_len && g < 256; ++g) {
          ibv_gid gid{};
          if (ibv_query_gid(ctx, static_cast<uint8_t>(p), g, &gid) != 0) break;
          bool zero = true;
          for (auto b : gid.raw) zero = zero && b == 0;
          if (!zero) port.gids.push_back({g, format_gid(gid)});
        }
        dev.ports.push_back(std::move(port));
      }
    }
    ibv_close_device(ctx);
    d.devices.push_back(std::move(dev));
  }
  if (d.devices.empty() && d.note.empty()) d.note = "no RDMA devices";
  return d;
}

std::string pick_net_device(const Discovery& d, int gpu_numa_node, int local_rank) {
  struct Candidate {
    const Device* dev;
    const Port* port;
  };
  std::vector<Candidate> near, any;
  for (const auto& dev : d.devices)
    for (const auto& p : dev.ports) {
      if (p.state != "PORT_ACTIVE" && p.state != "ACTIVE") continue;
      any.push_back({&dev, &p});
      if (gpu_numa_node >= 0 && dev.numa_node == gpu_numa_node) near.push_back({&dev, &p});
    }
  std::vector<Candidate>& pool = near.empty() ? any : near;
  if (pool.empty()) return {};
  // The fastest ports, in name order: the ranks of a host take turns over them.
  double best = 0;
  for (const auto& c : pool) best = std::max(best, c.port->rate_gbps());
  std::vector<Candidate> fastest;
  for (const auto& c : pool)
    if (c.port->rate_gbps() == best) fastest.push_back(c);
  std::sort(fastest.begin(), fastest.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.dev->name, a.port->number) < std::tie(b.dev->name, b.port->number);
  });
  const Candidate& c = fastest[static_cast<size_t>(std::max(local_rank, 0)) % fastest.size()];
  return fmt::format("{}:{}", c.dev->name, c.port->number);
}

}  // namespace conveyor::transport::rdma
