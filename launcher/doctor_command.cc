// `conveyor doctor`: what this machine offers conveyor's transport, and what it would use.
// Works without RDMA hardware and without a GPU (those sections then say "none").
#include <cstdlib>
#include <optional>
#include <set>
#include <string>

#include "common/error.h"
#include "kernels/backend.h"
#include "kernels/device.h"
#include "launcher/commands.h"
#include "transport/rdma.h"
#include "transport/transport.h"
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

  const kernels::GpuList gpus = kernels::list_gpus();
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  fmt::print(
      "CPU backend\n  {}\n  OPENBLAS_CORETYPE: {}\n  note: bit-identical results across "
      "hosts need the same kernels on every host\n",
      kernels::make_backend({kernels::DeviceKind::kCpu, 1})->describe(),
      coretype ? coretype : "(unset: chosen for this CPU)");
  fmt::print("CUDA devices\n");
  if (gpus.gpus.empty()) fmt::print("  none ({})\n", gpus.why_none);
  for (const auto& g : gpus.gpus)
    fmt::print("  {}: {}, PCI {}, NUMA node {}, {:.1f} GiB\n", g.index, g.name,
               g.pci_bus_id.empty() ? "?" : g.pci_bus_id,
               g.numa_node >= 0 ? std::to_string(g.numa_node) : "?",
               static_cast<double>(g.memory_bytes) / (1u << 30));
  // What `--device cuda` would run on in this process (the GPU of its local rank, as a launch
  // sets it), asked of the device seam as the trainer asks it; or why it cannot.
  fmt::print("CUDA backend\n");
  std::optional<kernels::Gpu> gpu;
  int local_rank = 0;
  try {
    local_rank = options_from_env("").local_rank;
    gpu = kernels::choose_rank_gpu(-1, local_rank);
    const auto backend = kernels::make_backend({kernels::DeviceKind::kCuda, 0, gpu->index});
    const kernels::GpuMemory memory = kernels::gpu_memory(gpu->index);
    fmt::print("  --device cuda: {}\n", backend->describe());
    fmt::print(
        "  local rank {} -> GPU {} (local rank % {} GPUs; --gpu N overrides), {:.1f} of "
        "{:.1f} GiB free\n",
        local_rank, gpu->index, gpus.gpus.size(),
        static_cast<double>(memory.free_bytes) / (1u << 30),
        static_cast<double>(memory.total_bytes) / (1u << 30));
  } catch (const Error& e) {
    fmt::print("  {}\n", describe(e));  // names --device cuda and says why
  }

  bool shm = tl_names.count("sysv") || tl_names.count("posix");
  bool cma = tl_names.count("cma") > 0;
  // The NIC nearest the GPU this process would use, as the transport picks it.
  std::string nic = rdma::pick_net_device(rd, gpu ? gpu->numa_node : -1, local_rank);
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
             gpus.gpus.empty() ? "n/a (no CUDA device)"
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
