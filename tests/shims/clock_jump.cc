// TEST SHIM (LD_PRELOAD): a wall clock that jumps. Every other read of CLOCK_REALTIME is a day
// behind the one before, as when NTP or an administrator steps the clock mid-run. Monotonic
// clocks are left alone. Used by tests/integration/pipeline/clock_jump_test.cc.
#include <dlfcn.h>
#include <time.h>

#include <atomic>

namespace {
std::atomic<unsigned> reads{0};
}

extern "C" int clock_gettime(clockid_t clock, struct timespec* ts) {
  using Real = int (*)(clockid_t, struct timespec*);
  static const Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "clock_gettime"));
  const int rc = real(clock, ts);
  if (rc == 0 && clock == CLOCK_REALTIME && (reads.fetch_add(1) & 1) != 0) ts->tv_sec -= 86400;
  return rc;
}
