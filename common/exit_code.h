// The exit codes of the CLI contract (docs/DESIGN.md, "Exit codes"), in one place: main()
// turns an Error into one of the first four (Error::exit_code()), a run stopped on request
// exits with kExitPreempted (pipeline/runtime/stop_request.h), and the launchers pass them on.
#pragma once

namespace conveyor {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;     // a failure: rerun or report it
inline constexpr int kExitUsage = 2;       // bad input: what was wrong, where, what to do
inline constexpr int kExitPeerFailed = 3;  // another rank or host failed first
// A run stopped on request after its checkpoint was committed (a preempted job: requeue it and
// run the same command again). conveyor launch passes it on and does not restart such a job.
inline constexpr int kExitPreempted = 4;

}  // namespace conveyor
