#include "checkpoint/fault_injection.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace conveyor::checkpoint::fault {

namespace {

// Written by install() only while no save runs (see the header); g_active publishes it.
FaultHooks g_hooks;
std::atomic<bool> g_active{false};

}  // namespace

bool FaultHooks::arm(std::string_view point, const std::string& spec) {
  const char* value = spec.c_str();
  char* end = nullptr;
  const long long step = std::strtoll(value, &end, 10);
  if (end == value) return false;
  Trigger t{std::string(point), step, true, 0};
  if (*end == ':') {
    t.any_stage = false;
    t.stage = std::strtol(end + 1, nullptr, 10);
  }
  triggers_.push_back(std::move(t));
  return true;
}

void FaultHooks::arm(std::string_view point, int64_t step, int stage) {
  triggers_.push_back({std::string(point), step, stage < 0, stage});
}

bool FaultHooks::armed(std::string_view point, int64_t step, int stage) const {
  for (const auto& t : triggers_) {
    if (t.point != point || t.step != step) continue;
    if (t.any_stage || stage < 0 || t.stage == stage) return true;
  }
  return false;
}

void install(FaultHooks hooks) {
  g_active.store(false, std::memory_order_release);
  g_hooks = std::move(hooks);
  g_active.store(!g_hooks.empty(), std::memory_order_release);
}

bool armed(const char* point, int64_t step, int stage) {
  if (!g_active.load(std::memory_order_acquire)) return false;
  return g_hooks.armed(point, step, stage);
}

void kill_self(const char* point, int64_t step) {
  // stderr directly: the logger may buffer, and SIGKILL flushes nothing.
  std::fprintf(stderr, "fault injection: %s fired at step %lld; raising SIGKILL\n", point,
               static_cast<long long>(step));
  std::fflush(stderr);
  std::raise(SIGKILL);
  std::abort();  // not reached
}

}  // namespace conveyor::checkpoint::fault
