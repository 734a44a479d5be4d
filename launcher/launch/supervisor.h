// The per-node supervisor behind `conveyor launch`: starts N local ranks of one command,
// prefixes their output with the rank, forwards Ctrl-C/SIGTERM, and when one rank fails
// stops the others. Optionally restarts the whole group.
//
// Failure: every rank gets a report socket (CONVEYOR_FAILURE_REPORT_FD,
// transport/bootstrap/job_failure.h) on which it says which rank the job blamed the moment it
// learns it. The first line launch prints names that rank (else the first rank to exit non-zero).
// A local rank the job declared silent (hung or stopped, so deaf to SIGTERM) is killed at
// once; the others have been told by the job and exit by themselves (exit 3), and get 2 s
// before SIGTERM, then the grace time before SIGKILL.
#pragma once

#include <string>
#include <vector>

#include "transport/bootstrap/options.h"

namespace conveyor::cli {

// The most ranks one job may have, on one host or several: a rank is 14 bits of every
// message tag (transport/bootstrap/options.h). `--nproc` is bounded by it.
inline constexpr int kMaxJobRanks = transport::kMaxRanks - 1;

struct LaunchOptions {
  int nproc = 0;      // ranks on this node (required without --hostfile/--hosts)
  int node_rank = 0;  // this node's index (multi-host: set by the launcher)
  int nnodes = 1;
  // Multi-host (multi_host.h): the hosts and how ranks reach them.
  std::string hostfile;     // "HOST slots=N" lines
  std::string hosts;        // "h1:2,h2:2"
  std::string rsh = "ssh";  // any ssh-compatible command, e.g. "ssh -F cfg"
  // Set by the multi-host launcher for the supervisor it starts on each host.
  int first_rank = -1;       // RANK of this node's first rank (-1: node_rank * nproc)
  int world_size = 0;        // 0: nproc * nnodes
  bool token_stdin = false;  // the secret and control lines come on stdin (launcher_channel.h)
  std::string master_addr;   // empty: 127.0.0.1, or the first host of a multi-host job
  int master_port = 0;       // 0: pick a free port (one host), 29500 (multi-host)
  int max_restarts = 0;      // restart the whole group this many times after a failure
  double grace_seconds = 5;  // SIGTERM -> SIGKILL for the survivors of a failure
  // SIGTERM/SIGUSR1 (preemption) -> SIGKILL: the ranks finish their step and save first.
  double stop_timeout_seconds = 120;
  int restart_count = 0;             // restarts before this attempt (set by a multi-host launcher)
  bool quiet = false;                // keep the ranks' output; print it (to stderr) only on failure
  std::vector<std::string> command;  // "conveyor" as argv[0] means this binary
};

// Runs the group until every rank exits; returns 0 when all succeeded (also after a signal
// launch passed on to them), 4 (kExitPreempted) when a SIGTERM or SIGUSR1 stopped every rank
// with its state saved, 128 + the signal when a signal stopped them otherwise, else the exit
// code of the rank the job blamed when it is local (137 for a silent rank launch killed),
// else of the first rank that failed (a rank's own failure preferred over exit 3, which only
// says "a peer failed"). Throws Error(kUsage) for bad options.
int run_supervisor(const LaunchOptions& options);

}  // namespace conveyor::cli
