// The per-node supervisor behind `conveyor launch`: starts N local ranks of one command,
// prefixes their output with the rank, forwards Ctrl-C/SIGTERM, and when one rank fails
// stops the others. Optionally restarts the whole group.
#pragma once

#include <string>
#include <vector>

namespace conveyor::cli {

struct LaunchOptions {
  int nproc = 1;      // ranks on this node
  int node_rank = 0;  // this node's index (multi-node: set by conveyor-launch)
  int nnodes = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;               // 0: pick a free port (single node only)
  int max_restarts = 0;              // restart the whole group this many times after a failure
  double grace_seconds = 5;          // SIGTERM -> SIGKILL for the survivors of a failure
  bool quiet = false;                // keep the ranks' output; print it (to stderr) only on failure
  std::vector<std::string> command;  // "conveyor" as argv[0] means this binary
};

// Runs the group until every rank exits; returns 0 when all succeeded, otherwise the exit
// code of the first rank that failed (a rank's own failure preferred over exit 3, which only
// says "a peer failed"). Throws Error(kUsage) for bad options.
int run_supervisor(const LaunchOptions& options);

}  // namespace conveyor::cli
