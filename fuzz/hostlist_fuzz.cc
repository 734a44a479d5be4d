// Fuzzes the Slurm host-list expansion (SLURM_JOB_NODELIST -> host names).
//
// Beyond "no crash": a list is refused with conveyor::Error, or expands to at most
// kMaxHostlistHosts names, none empty and none holding a bracket or a comma.
#include <cstdlib>
#include <string_view>

#include "common/error.h"
#include "transport/bootstrap/hostlist.h"

using namespace conveyor;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view list(reinterpret_cast<const char*>(data), size);
  try {
    const auto hosts = transport::expand_hostlist(list);
    if (hosts.empty() || hosts.size() > transport::kMaxHostlistHosts) std::abort();
    for (const auto& h : hosts) {
      if (h.empty() || h.find_first_of("[],") != std::string::npos) std::abort();
    }
  } catch (const Error&) {
  }
  return 0;
}
