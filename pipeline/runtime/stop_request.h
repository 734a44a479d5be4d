// Stopping a run early on request: SIGTERM or SIGUSR1 (what Slurm sends before a job's time
// runs out, with `--signal`, and what a scheduler sends to preempt it).
//
// The signal only sets a flag. Every rank adds its flag to the end-of-step reduction
// (step_reduction.h), so all ranks learn of a request at the same step, finish that step,
// commit a checkpoint (with --ckpt-dir) and exit with kExitPreempted. Rerunning the same
// command resumes from that step. SIGINT (Ctrl-C) is left alone: it ends the run at once.
#pragma once

#include "common/exit_code.h"

namespace conveyor::transport {
class Transport;
}

namespace conveyor::pipeline {

// Installs the handlers (SA_RESTART: blocking calls carry on). Call once, before training.
void install_stop_handlers();

// The signal that asked the run to stop (SIGTERM, SIGUSR1), or 0.
int stop_signal();

// Whether any rank of the job has been asked to stop. Collective when `transport` is given
// (every rank calls it at the same point, and all get the same answer); this rank's own
// request otherwise. For the long phases outside the steps (validation, generation), which
// look at it between batches or tokens and give up their optional work.
bool stop_requested_anywhere(transport::Transport* transport);

// The exit code of a run stopped on request before its last step: kExitPreempted when a
// checkpoint of the step it stopped at was committed (rerun to resume), else 128 + the
// signal, as if the signal had ended it.
int stop_exit_code(bool checkpoint_saved);

}  // namespace conveyor::pipeline
