#include "checkpoint/fault_injection.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace conveyor::checkpoint::fault {

bool armed(const char* var, int64_t step, int stage) {
  const char* value = std::getenv(var);
  if (value == nullptr || *value == '\0') return false;
  char* end = nullptr;
  const long long want_step = std::strtoll(value, &end, 10);
  if (end == value || want_step != step) return false;
  if (*end == ':') {
    const long want_stage = std::strtol(end + 1, nullptr, 10);
    return stage < 0 || want_stage == stage;
  }
  return true;
}

void kill_self(const char* var, int64_t step) {
  // stderr directly: the logger may buffer, and SIGKILL flushes nothing.
  std::fprintf(stderr, "fault injection: %s fired at step %lld; raising SIGKILL\n", var,
               static_cast<long long>(step));
  std::fflush(stderr);
  std::raise(SIGKILL);
  std::abort();  // not reached
}

}  // namespace conveyor::checkpoint::fault
