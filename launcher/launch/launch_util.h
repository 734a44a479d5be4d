// Small pieces shared by the one-host supervisor and the multi-host launcher.
#pragma once

#include <sys/types.h>

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::cli {

// A fresh 128-bit job secret, as 32 hex digits, from /dev/urandom.
std::string random_token();

// The path of the running conveyor binary (/proc/self/exe).
std::string self_exe();

// `word` quoted for a POSIX shell ('...' with embedded quotes escaped).
std::string shell_quote(const std::string& word);

// The signals a launcher stops its job on: Ctrl-C (SIGINT) and the preemption signals
// SIGTERM and SIGUSR1 (pipeline/runtime/stop_request.h). catch_launch_signals() installs a handler
// that records the last one; launch_signal() returns it (0: none). note_launch_signal()
// records one that arrived another way (the launcher channel of a remote supervisor).
void catch_launch_signals();
int launch_signal();
void note_launch_signal(int sig);

// True for the signals that ask ranks to save and stop rather than die.
bool is_preemption_signal(int sig);

// The exit code of a job whose members (the ranks of a host, or the hosts of a job) exited
// with `codes`, given the `result` chosen while it ran: 0 when every member finished with 0,
// whatever signal launch passed on (a stop request that lands in the last step lets every
// rank complete, commit and exit 0); kExitPreempted when launch asked them to save and stop
// (`preempting`) and every one did; `result` otherwise.
int job_exit_code(const std::vector<int>& codes, bool preempting, int result);

// Whether an attempt that ended with `exit_code` is worth starting again under
// --max-restarts: not after success, bad usage (it will not get better), a preemption (exit
// 4: requeue instead) or a signal to the launcher.
bool worth_restarting(int exit_code);

// For a child right after fork(): dies with its parent (`parent`, getpid() before the fork),
// even a parent killed with SIGKILL, so nothing a launcher started outlives it; exits at once
// if the parent is already gone.
void die_with_parent(pid_t parent);

// This process's environment ("NAME=value" entries) without the variables in `names`: those a
// launcher sets for its children itself.
std::vector<std::string> environment_without(std::initializer_list<const char*> names);

// A child's output cut into lines as it arrives: feed() the bytes read; each complete line
// (without its newline) goes to `line`; with `last`, so does an unterminated rest (the child
// closed its output).
class LineBuffer {
 public:
  void feed(std::string_view bytes, bool last, const std::function<void(std::string_view)>& line);

 private:
  std::string partial_;
};

// The words of `command` (split at spaces), for --rsh "ssh -F cfg". Throws Error(kUsage) for
// an empty command.
std::vector<std::string> split_command(const std::string& command, const char* flag);

}  // namespace conveyor::cli
