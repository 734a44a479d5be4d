// Helpers for the CPU kernel tests: random inputs, central finite differences in double,
// and element-wise comparison with one Catch2 assertion per array.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace conveyor::kernels_test {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// d loss / d x by central differences, all in double. loss must be smooth near x.
// Step 1e-5: truncation error ~h^2 * f''' ~ 1e-10, rounding ~1e-16 / h ~ 1e-11.
inline std::vector<double> numeric_grad(
    std::vector<double> x, const std::function<double(const std::vector<double>&)>& loss,
    double h = 1e-5) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss(x);
    x[i] = saved - h;
    const double down = loss(x);
    x[i] = saved;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

inline double dot(const std::vector<double>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * static_cast<double>(b[i]);
  return s;
}

// Every element satisfies |got - want| <= atol + rtol * |want|; on failure the message
// names the first bad index and how many are bad.
inline void expect_close(const std::vector<float>& got, const std::vector<double>& want,
                         double atol, double rtol, const std::string& what) {
  REQUIRE(got.size() == want.size());
  size_t bad = 0, first = 0;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const bool ok = err <= atol + rtol * std::fabs(want[i]);  // NaN fails
    if (!ok) {
      if (bad == 0) first = i;
      ++bad;
    }
    if (err > worst) worst = err;
  }
  std::ostringstream msg;
  msg << what << ": " << bad << " of " << got.size() << " elements off (worst abs error " << worst
      << ")";
  if (bad) msg << "; first at " << first << ": got " << got[first] << ", want " << want[first];
  INFO(msg.str());
  CHECK(bad == 0);
}

// got - base, element-wise: what a backward call added to an accumulated buffer.
inline std::vector<float> added(const std::vector<float>& got, const std::vector<float>& base) {
  std::vector<float> d(got.size());
  for (size_t i = 0; i < got.size(); ++i) d[i] = got[i] - base[i];
  return d;
}

}  // namespace conveyor::kernels_test
