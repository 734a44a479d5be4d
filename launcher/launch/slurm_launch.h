// `conveyor launch -- conveyor train ...` inside a Slurm allocation (SLURM_JOB_ID set, no
// --nproc or --hostfile): the ranks are started by `srun`, one task per rank on the
// allocation's nodes, with a fresh secret in their environment (never in argv) and one
// rendezvous port; each rank reads its place from SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID
// and MASTER_ADDR from the first host of SLURM_JOB_NODELIST (transport/bootstrap/options.cc).
//
// Output lines get "[rank R] " (from srun --label); Ctrl-C, SIGTERM and SIGUSR1 go to srun,
// which passes them to every task; --max-restarts runs srun again with a new secret.
#pragma once

#include "launcher/launch/supervisor.h"

namespace conveyor::cli {

// True when `options` ask for a launch under the Slurm allocation this process runs in.
bool wants_slurm_launch(const LaunchOptions& options);

// Runs the job with srun until it ends; returns its exit code (as run_supervisor).
int run_slurm_launch(const LaunchOptions& options);

}  // namespace conveyor::cli
