// Internals of the CPU backend that no other backend has (its vector math); the ops
// themselves are tested on every backend in gradients_test.cc and properties_test.cc, and the
// CPU thread-count determinism in determinism_test.cc.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "kernels/cpu/vec_math.h"

TEST_CASE("fast_exp is within 2 ulp-ish of exp over the softmax range", "[kernels]") {
  using conveyor::cpu::detail::fast_exp;
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(fast_exp(x) - want) / want);
  }
  INFO("worst relative error " << worst);
  CHECK(worst < 3e-7);
  CHECK(fast_exp(0.0f) == 1.0f);
  CHECK(fast_exp(-1000.0f) == 0.0f);
  CHECK(fast_exp(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(std::isfinite(fast_exp(1000.0f)));
  CHECK(std::isnan(fast_exp(std::numeric_limits<float>::quiet_NaN())));
}
