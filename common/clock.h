// Monotonic time and deadlines. Every wait in conveyor takes a Deadline.
#pragma once

#include <time.h>

#include <chrono>
#include <cstdint>

namespace conveyor {

using Clock = std::chrono::steady_clock;

// How long one wait on another rank may take before the job fails (a peer's part of a step,
// a checkpoint write, a collective). Generous, because a peer may be slow, not dead: a dead
// peer is detected within seconds by the transport's heartbeat.
inline constexpr double kPeerWaitSeconds = 600;

inline double now_seconds() {
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

// Wall-clock time, seconds since the Unix epoch: for timestamps in outputs, never for waits.
inline double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The same clock as Clock (libstdc++'s steady_clock is CLOCK_MONOTONIC), read at the kernel
// tick's resolution (1-4 ms). Reading it costs a few nanoseconds where a precise read costs
// tens (a paravirtual clock under KVM): deadlines are created and checked on every transport
// wait, whose fast path is a fraction of a microsecond. At most one tick behind Clock::now().
inline Clock::time_point coarse_now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

// The longest wait a duration of seconds stands for: a century. Longer requests (1e300, inf)
// mean "as good as never" and are clamped to it, so that adding them to the clock cannot
// overflow its 64-bit nanoseconds (292 years) and wrap into the past.
inline constexpr double kMaxWaitSeconds = 100.0 * 365 * 24 * 3600;

// `s` seconds as the clock's duration, for any double: not a number, negative or zero is
// zero (already over); more than kMaxWaitSeconds, infinity included, is kMaxWaitSeconds.
inline Clock::duration clamped_seconds(double s) {
  if (!(s > 0)) return Clock::duration::zero();
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(s < kMaxWaitSeconds ? s : kMaxWaitSeconds));
}

// A point in time after which a wait gives up. Deadlines are for timeouts of milliseconds
// to minutes: they read coarse_now(), so one may pass up to a kernel tick late. Any length
// is safe: a negative one has expired, a huge one is kMaxWaitSeconds away.
class Deadline {
 public:
  static Deadline after(std::chrono::milliseconds d) {
    // Compared in milliseconds: converting a huge count to nanoseconds would overflow.
    constexpr auto kMax = std::chrono::milliseconds(static_cast<int64_t>(kMaxWaitSeconds) * 1000);
    if (d <= std::chrono::milliseconds::zero()) return Deadline(coarse_now());
    return Deadline(coarse_now() + (d < kMax ? d : kMax));
  }
  static Deadline after_seconds(double s) { return Deadline(coarse_now() + clamped_seconds(s)); }
  bool expired() const { return coarse_now() >= at_; }
  Clock::time_point at() const { return at_; }
  std::chrono::milliseconds remaining() const {
    auto r = std::chrono::duration_cast<std::chrono::milliseconds>(at_ - coarse_now());
    return r.count() > 0 ? r : std::chrono::milliseconds(0);
  }

 private:
  explicit Deadline(Clock::time_point at) : at_(at) {}
  Clock::time_point at_;
};

}  // namespace conveyor
