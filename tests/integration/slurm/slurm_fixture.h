// A real two-node Slurm cluster on this machine for tests: munged, slurmctld and two slurmd
// ("nodes", each `slurmd -N NAME` on its own port), run as root from files in a temporary
// directory (tests/integration/slurm/slurm_cluster.sh does the work; see its header).
//
// Contract:
// - The constructor returns only once `sinfo` shows both nodes idle; otherwise it fails the
//   test (REQUIRE), printing the script's output (logs' tails), and leaves nothing behind.
// - The destructor always tears down: every job is cancelled, the daemons get SIGTERM then
//   SIGKILL, and whatever is left of them or of their slurmstepd (tasks included) is
//   SIGKILLed; what had to be KILLed is printed ("slurm_cluster: KILLED ...").
// - Commands reach this cluster through env() (SLURM_CONF): pass it to run_program.
// - Node names resolve (getaddrinfo) to an address of this machine, so code that takes
//   MASTER_ADDR from SLURM_JOB_NODELIST reaches rank 0. nodes() is in Slurm's order: a job
//   on both lists them so in SLURM_JOB_NODELIST and runs task 0 on nodes()[0].
// - Needs root, munge and slurm-wlm (Debian 12): tests call SKIP_WITHOUT_SLURM() first.
// - Several fixtures (also in other processes) may exist at once: own files, own ports.
#pragma once

#include <string>
#include <vector>

#include "tests/test_util.h"

namespace conveyor::test {

class SlurmCluster {
 public:
  // Why this machine cannot run the fixture (not root, no munged/slurmctld/slurmd/srun...,
  // slurmd without -N, already inside a Slurm job, no two host names that resolve to this
  // machine), or empty when it can. Computed once per process.
  static std::string unavailable();

  SlurmCluster();
  ~SlurmCluster();
  SlurmCluster(const SlurmCluster&) = delete;
  SlurmCluster& operator=(const SlurmCluster&) = delete;

  // The cluster's slurm.conf (what SLURM_CONF must name).
  const std::string& conf() const { return conf_; }
  // The two node names, in Slurm's order (see the contract).
  const std::vector<std::string>& nodes() const { return nodes_; }
  // Environment entries for run_program: {"SLURM_CONF=..."}.
  std::vector<std::string> env() const { return {"SLURM_CONF=" + conf_}; }
  // The fixture's directory (slurm.conf, cluster.env, munge/, slurm/ with the logs).
  std::string dir() const { return dir_.str(); }

  struct Process {
    int pid = 0;
    std::string what;  // "slurmctld", "slurmd NODE", "munged", "slurmstepd", "task CMDLINE"
  };
  // The cluster's live processes: its daemons, every slurmstepd started for it (found by
  // SLURM_CONF in their environment) and every process in those slurmstepd's sessions.
  std::vector<Process> processes() const;

 private:
  TempDir dir_;
  std::string conf_;
  std::vector<std::string> nodes_;
  std::vector<Process> daemons_;
};

// True while `pid` is a process that has not exited (a zombie counts as exited).
bool process_alive(int pid);

}  // namespace conveyor::test

// Skips the calling test case when the fixture cannot run here (ctest reports "SKIPPED:"
// output as skipped). Needs <catch2/catch.hpp>.
#define SKIP_WITHOUT_SLURM()                                                          \
  if (const auto why = ::conveyor::test::SlurmCluster::unavailable(); !why.empty()) { \
    WARN("SKIPPED: " << why);                                                         \
    return;                                                                           \
  }
