// `conveyor launch --hostfile FILE | --hosts h1:2,h2:2 [--rsh CMD] -- conveyor train ...`:
// one job on several hosts, started over ssh (or any ssh-compatible --rsh command).
//
// The launcher picks the job secret and the rendezvous address and port once, then starts one
// supervisor per host (`conveyor launch --token-stdin ...`, supervisor.h) through
// `RSH HOST 'cd CWD && exec env UCX_*=.. OPENBLAS_*=.. CONVEYOR_*=.. conveyor launch ...'`.
// The secret travels on the session's stdin (launcher_channel.h), never in argv; so do
// Ctrl-C, SIGTERM and SIGUSR1, which the launcher forwards to every host. Output comes back
// with its "[rank N]" prefixes; the supervisors' own lines get "[host H]".
//
// Assumptions, as torchrun's and DeepSpeed's: the conveyor binary and the working directory
// have the same paths on every host, and the first host's name (or --master-addr) reaches it
// from every host. Checkpoints need a file system shared by all hosts.
//
// Failure: a host whose supervisor fails (a rank died, a host was lost) ends the job; the
// others end by themselves (the rendezvous service tells every rank), and are stopped after
// the grace time otherwise. SIGKILL of the launcher ends its ssh sessions (they die with
// it), and a supervisor whose session ends stops its ranks. --max-restarts restarts every
// host with a new secret.
#pragma once

#include "launcher/launch/supervisor.h"

namespace conveyor::cli {

// The rendezvous port of a multi-host job without --master-port (torchrun's default).
inline constexpr int kDefaultMultiHostPort = 29500;

// Runs the job to its end; returns the exit code (as run_supervisor). Throws Error(kUsage)
// for bad options or a bad host list.
int run_multi_host(const LaunchOptions& options);

}  // namespace conveyor::cli
