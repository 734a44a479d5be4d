// Deadlines read a coarse clock (common/clock.h); these pin down what callers rely on: it is
// the same clock as Clock, never ahead of it and at most a tick behind, and deadlines expire
// when they should.
#include <catch2/catch.hpp>

#include <chrono>
#include <limits>

#include "common/clock.h"

using namespace std::chrono_literals;

TEST_CASE("coarse_now reads Clock at tick resolution", "[clock]") {
  for (int i = 0; i < 1000; ++i) {
    const auto coarse = conveyor::coarse_now();
    const auto precise = conveyor::Clock::now();
    REQUIRE(coarse <= precise);
    REQUIRE(precise - coarse < 50ms);  // a kernel tick is 1-10 ms
  }
}

TEST_CASE("deadlines expire after their duration, within a tick", "[clock]") {
  CHECK(conveyor::Deadline::after(0ms).expired());
  CHECK(conveyor::Deadline::after_seconds(-1).expired());
  const auto far = conveyor::Deadline::after_seconds(10);
  CHECK_FALSE(far.expired());
  CHECK(far.remaining() > 9s);
  CHECK(far.remaining() <= 10s);

  const auto start = conveyor::Clock::now();
  const auto soon = conveyor::Deadline::after(20ms);
  while (!soon.expired()) {
    REQUIRE(conveyor::Clock::now() - start < 5s);  // it must expire, not hang the test
  }
  const auto waited = conveyor::Clock::now() - start;
  CHECK(waited >= 10ms);  // 20 ms, less at most one tick of the coarse clock
  CHECK(soon.remaining() == 0ms);
}

TEST_CASE("a deadline of any length is safe: huge and infinite ones never expire at once",
          "[clock]") {
  using conveyor::Deadline;
  // A conversion to the clock's nanoseconds that overflows would wrap into the past.
  for (double s : {1e300, 1e20, 1e10, std::numeric_limits<double>::infinity(),
                   std::numeric_limits<double>::max()}) {
    INFO(s);
    const auto d = Deadline::after_seconds(s);
    CHECK_FALSE(d.expired());
    CHECK(d.remaining() > std::chrono::hours(24 * 365));
  }
  // Not a number, negative or -inf: already expired, never far in the future.
  for (double s : {-1e300, -std::numeric_limits<double>::infinity(),
                   std::numeric_limits<double>::quiet_NaN()}) {
    INFO(s);
    CHECK(Deadline::after_seconds(s).expired());
  }
  CHECK_FALSE(Deadline::after(std::chrono::milliseconds::max()).expired());
  CHECK(Deadline::after(std::chrono::milliseconds::min()).expired());
}
