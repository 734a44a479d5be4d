// Slurm's compressed host lists: "n[1-3,7],login" -> n1 n2 n3 n7 login.
//
// SLURM_JOB_NODELIST and SLURM_NODELIST hold this form; the first host is where rank 0 runs
// (Slurm gives SLURM_PROCID 0 to the first task on the first node), so it is MASTER_ADDR.
// Ranges keep their zero padding ("node[08-10]" -> node08 node09 node10), a name may hold
// several bracket groups (all combinations, in order), and commas inside brackets separate
// ranges, not hosts.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::transport {

// More hosts than this in one list is refused (a typo such as "n[1-100000000]").
inline constexpr size_t kMaxHostlistHosts = 1 << 20;

// The hosts `list` names, in order. Throws Error(kUsage) quoting the list and saying what is
// wrong: an empty list or name, an unclosed or nested bracket, a range that is not
// "A", "A-B" with A <= B, or more than kMaxHostlistHosts hosts.
std::vector<std::string> expand_hostlist(std::string_view list);

}  // namespace conveyor::transport
