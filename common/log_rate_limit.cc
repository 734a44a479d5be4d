#include "common/log_rate_limit.h"

#include <fmt/format.h>

namespace conveyor {

std::optional<std::string> LogRateLimit::admit(Clock::time_point now) {
  if (used_ == 0 || now - window_start_ >= window_) {
    window_start_ = now;
    used_ = 0;
  }
  if (used_ >= burst_) {
    ++left_out_;
    return std::nullopt;
  }
  ++used_;
  if (left_out_ == 0) return std::string();
  auto note = fmt::format(" ({} similar line{} left out before this one)", left_out_,
                          left_out_ == 1 ? "" : "s");
  left_out_ = 0;
  return note;
}

}  // namespace conveyor
