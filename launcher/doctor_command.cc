// `conveyor doctor`: what this machine offers conveyor's transport, and what it would use.
// Works without RDMA hardware and without a GPU (those sections then say "none").
#include <cstdlib>
#include <set>
#include <string>

#include "common/error.h"
#include "kernels/backend.h"
#include "launcher/commands.h"
#include "transport/cuda_support.h"
#include "transport/rdma.h"
#include "transport/ucx_probe.h"

namespace conveyor::cli {
namespace {

int run_doctor() {
  using namespace conveyor::transport;
  UcxProbe ucx = probe_ucx();
  fmt::print("UCX\n  version: {}\n", ucx.version);
  std::set<std::string> tl_names;
  std::string list;
  for (const auto& r : ucx.resources) {
    tl_names.insert(r.transport);
    list += fmt::format("{}{}/{}", list.empty() ? "" : ", ", r.transport, r.device);
  }
  fmt::print("  transports: {}\n", list.empty() ? "none" : list);
  fmt::print("  UCX_TLS: {}\n", ucx.ucx_tls.empty() ? "(unset: UCX chooses)" : ucx.ucx_tls);
  fmt::print("  CUDA memory support: {}\n", ucx.cuda_memory ? "yes" : "no");
  if (!ucx.note.empty()) fmt::print("  note: {}\n", ucx.note);

  rdma::Discovery rd = rdma::discover();
  fmt::print("RDMA devices\n");
  if (rd.devices.empty()) fmt::print("  none found ({})\n", rd.note);
  for (const auto& d : rd.devices) {
    fmt::print("  {}: node GUID {}, NUMA node {}, PCI {}\n", d.name, d.node_guid, d.numa_node,
               d.pci_address.empty() ? "?" : d.pci_address);
    for (const auto& p : d.ports) {
      fmt::print("    port {}: {} {}, {}x {:.4g} Gb/s = {:.4g} Gb/s, LID {}\n", p.number, p.state,
                 p.link_layer, p.width, p.gbps_per_lane, p.rate_gbps(), p.lid);
      for (const auto& g : p.gids) fmt::print("      GID[{}] {}\n", g.index, g.address);
    }
  }
  if (!rd.devices.empty() && !rd.note.empty()) fmt::print("  note: {}\n", rd.note);

  std::string why_no_gpu;
  auto gpus = cuda::devices(&why_no_gpu);
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  fmt::print(
      "CPU backend\n  {}\n  OPENBLAS_CORETYPE: {}\n  note: bit-identical results across "
      "hosts need the same kernels on every host\n",
      kernels::make_backend({"cpu", 1})->describe(),
      coretype ? coretype : "(unset: chosen for this CPU)");
  fmt::print("CUDA devices\n");
  if (gpus.empty()) fmt::print("  none ({})\n", why_no_gpu);
  for (const auto& g : gpus)
    fmt::print("  {}: {}, PCI {}, {:.1f} GiB\n", g.index, g.name, g.pci_bus_id,
               static_cast<double>(g.memory_bytes) / (1u << 30));
  // What `--device cuda` would run on (LOCAL_RANK picks the GPU), or why it cannot.
  fmt::print("CUDA backend\n");
  try {
    fmt::print("  --device cuda: {}\n", kernels::make_backend({"cuda"})->describe());
  } catch (const Error& e) {
    fmt::print("  {}\n", describe(e));  // names --device cuda and says why
  }

  bool shm = tl_names.count("sysv") || tl_names.count("posix");
  bool cma = tl_names.count("cma") > 0;
  std::string nic = rdma::pick_net_device(rd, -1);
  bool ib_tl = false;
  for (const auto& n : tl_names)
    ib_tl = ib_tl || n.rfind("rc", 0) == 0 || n.rfind("dc", 0) == 0 || n.rfind("ud", 0) == 0;
  fmt::print("conveyor would use\n");
  fmt::print("  data path: UCX tag send/receive on registered buffers (ucp_mem_map + memh)\n");
  fmt::print("  same host: {}{}\n",
             shm ? "shared memory (sysv/posix)" : "TCP loopback (no shared-memory transport)",
             shm && cma ? " + cma zero-copy for large messages" : "");
  fmt::print(
      "  between hosts: {}\n",
      !nic.empty() && ib_tl
          ? fmt::format("RDMA over {} (UCX_NET_DEVICES unset: UCX may use every active port)", nic)
      : !nic.empty()
          ? std::string("TCP (RDMA device present but UCX has no verbs transport for it)")
          : std::string("TCP (no RDMA device)"));
  fmt::print("  device buffers: {}\n",
             gpus.empty() ? "n/a (no CUDA device)"
             : ucx.cuda_memory
                 ? "passed to UCX directly (GPUDirect where the NIC supports it)"
                 : "staged through pinned host buffers (this UCX has no CUDA support)");
  fmt::print(
      "  dead peers: detected through the rendezvous connection (heartbeats, ~1.5 s); "
      "UCX peer error mode off (CONVEYOR_UCX_PEER_ERROR_MODE=1 turns it on and disables "
      "shared memory)\n");
  return kExitOk;
}

}  // namespace

void add_doctor(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand(
      "doctor", "Show UCX transports, RDMA devices, CUDA devices, and what conveyor would use");
  sub->callback([&run] { run = [] { return run_doctor(); }; });
}

}  // namespace conveyor::cli
