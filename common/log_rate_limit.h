// A cap on how many lines one source of log noise may write.
//
// Connections the rendezvous service refuses (a wrong token, garbage, a port scanner) are
// logged, but a flood of them must not flood the log: at most `burst` lines per `window`,
// and the first line of a new window says how many were left out.
//
// Thread safety: none; the owner serialises calls (the service calls it under its lock).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "common/clock.h"

namespace conveyor {

class LogRateLimit {
 public:
  LogRateLimit(int burst, std::chrono::milliseconds window) : burst_(burst), window_(window) {}

  // Whether a line may be written at `now`. When it may, the result is the text to append
  // to it: empty, or " (N similar lines left out since ...)" for lines refused before.
  std::optional<std::string> admit(Clock::time_point now);

  // Lines refused and not yet reported by a later admitted line.
  long left_out() const { return left_out_; }

 private:
  int burst_;
  std::chrono::milliseconds window_;
  Clock::time_point window_start_{};
  int used_ = 0;
  long left_out_ = 0;
};

}  // namespace conveyor
