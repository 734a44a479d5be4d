// The control line from a multi-host launcher to the supervisor it started on a host,
// carried on the supervisor's stdin (the ssh session's, so never in argv or on disk):
//
//   token <secret>\n     first: the job secret (CONVEYOR_JOB_TOKEN of every rank)
//   signal <N>\n         then, any number: act as if signal N had arrived (Ctrl-C, SIGTERM
//                        or a preemption signal the launcher received)
//   end of file          the launcher or its ssh session is gone: stop every rank
//
// Thread safety: none; the supervisor's loop owns it.
#pragma once

#include <string>

#include "common/clock.h"

namespace conveyor::cli {

class LauncherChannel {
 public:
  explicit LauncherChannel(int fd) : fd_(fd) {}
  int fd() const { return fd_; }

  // Blocks until the token line arrives. Throws Error(kUsage) when the channel closes first,
  // the first line is not a token, or the deadline passes.
  std::string read_token(Deadline deadline);

  // Reads what is available without blocking. Returns the signal to act on: one the
  // launcher sent, SIGTERM once when the channel has closed (closed() is then true), or 0.
  int poll_once();
  bool closed() const { return closed_; }

  static std::string token_line(const std::string& token) { return "token " + token + "\n"; }
  static std::string signal_line(int sig) { return "signal " + std::to_string(sig) + "\n"; }

 private:
  // The next complete line in buffer_, without its newline, or false.
  bool next_line(std::string& line);
  int fd_;
  std::string buffer_;
  bool closed_ = false;
};

}  // namespace conveyor::cli
