// The hosts of a multi-host job and how many ranks each runs.
//
// Two spellings, as DeepSpeed's launcher takes them:
//   --hostfile FILE   one host per line, "HOST slots=N" (slots default 1); blank lines and
//                     text after '#' are ignored
//   --hosts SPEC      "h1:2,h2:2" (":N" defaults to 1)
// Ranks are numbered host by host in the order given: h1 runs 0..1, h2 runs 2..3.
#pragma once

#include <string>
#include <vector>

namespace conveyor::cli {

struct HostSlots {
  std::string host;
  int slots = 1;
};

// Throws Error(kUsage) naming the file and line for a missing file, a malformed line, slots
// below 1, a host given twice, or no host at all.
std::vector<HostSlots> read_hostfile(const std::string& path);

// Throws Error(kUsage) quoting the spec, with the same checks.
std::vector<HostSlots> parse_hosts(const std::string& spec);

}  // namespace conveyor::cli
