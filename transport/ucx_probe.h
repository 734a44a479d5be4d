// What UCX offers on this machine, for `conveyor doctor` and the docs: its version, the
// transports (UCT components, memory domains, transport/device pairs) and whether UCP
// can send CUDA memory. Blocking (initialises UCX briefly); never throws: problems land
// in `note`. Must not run in a process that forks afterwards (UCX and fork do not mix).
#pragma once

#include <string>
#include <vector>

namespace conveyor::transport {

struct UcxResource {
  std::string transport;  // "tcp", "sysv", "rc_mlx5", ...
  std::string device;     // "lo", "memory", "mlx5_0:1", ...
};

struct UcxProbe {
  std::string version;
  std::vector<UcxResource> resources;
  bool cuda_memory = false;  // ucp_context_query reports UCS_MEMORY_TYPE_CUDA
  std::string ucx_tls;       // $UCX_TLS, empty when unset
  std::string note;
};

UcxProbe probe_ucx();

}  // namespace conveyor::transport
