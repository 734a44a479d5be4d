// The processes one supervisor watches: the ranks of this host (supervisor.cc) or one ssh
// session per host (multi_host.cc). Each child runs in its own process group, dies with its
// parent, and writes its stdout and stderr into one pipe. Both supervisors are the same loop:
//
//   for (;;) {
//     react to a launch signal (forward it, start stopping);
//     group.poll(...);        // relay output, reap children, react to each exit
//     if (group.done()) break;
//     escalate when a deadline passed (ask to stop, then SIGTERM or close, then SIGKILL);
//   }
//   return job_exit_code(group.exit_codes(), ...);
//
// What differs (how a child is told to stop, what its output is prefixed with, what an exit
// means for the job) stays with the caller, which keeps its own facts per child by index.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "launcher/launch/launch_util.h"

namespace conveyor::cli {

// How to start one child.
struct ChildSpec {
  std::vector<std::string> argv;                // argv[0] is looked up in PATH
  std::optional<std::vector<std::string>> env;  // the whole environment; none: inherit ours
  bool stdin_pipe = false;  // give the child a pipe on stdin (ChildGroup::Child::stdin_fd)
  int pass_fd = -1;         // a descriptor the child gets as `pass_as`
  int pass_as = -1;
};

class ChildGroup {
 public:
  struct Child {
    pid_t pid = -1;
    int out_fd = -1;    // its stdout and stderr; -1 once drained
    int stdin_fd = -1;  // with ChildSpec::stdin_pipe; the caller may close it (-1)
    LineBuffer output;  // for the caller's relay
    bool exited = false;
    int exit_code = 0;  // its exit status, or 128 + the signal that ended it
  };
  // (child index, bytes read, last: its pipe closed, so flush a partial line)
  using OutputFn = std::function<void(size_t, std::string_view, bool)>;
  using ExitFn = std::function<void(size_t)>;

  ChildGroup() = default;
  ~ChildGroup();  // closes the descriptors still open (the children are the caller's to end)
  ChildGroup(const ChildGroup&) = delete;
  ChildGroup& operator=(const ChildGroup&) = delete;

  // Forks and execs a child; returns its index. Throws Error(kRuntime) when fork or pipe fail;
  // a command that cannot be run exits 127 after saying so on its output.
  size_t start(const ChildSpec& spec);
  size_t size() const { return children_.size(); }
  Child& operator[](size_t i) { return children_[i]; }
  const Child& operator[](size_t i) const { return children_[i]; }

  // Waits up to 100 ms for output of any child or for one of `also` to become readable; hands
  // each child's output to `output`, then reaps the children that ended and hands each to
  // `exited` (its exit_code set).
  void poll(std::span<const int> also, const OutputFn& output, const ExitFn& exited);
  // Every child reaped and its output drained.
  bool done() const;
  // Sends `sig` to the process group of every child still running.
  void signal(int sig);
  // Closes every child's stdin pipe (a remote supervisor then stops its ranks).
  void close_stdin();
  std::vector<int> exit_codes() const;

 private:
  std::vector<Child> children_;
};

}  // namespace conveyor::cli
