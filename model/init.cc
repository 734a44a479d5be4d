#include "model/init.h"

#include <xxhash.h>

#include <cmath>

namespace conveyor::model {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in (0, 1], from the top 53 bits.
double uniform(uint64_t bits) {
  return (static_cast<double>(bits >> 11) + 1.0) * 0x1.0p-53;
}

}  // namespace

void init_parameter(const ParamSpec& spec, uint64_t seed, float* out) {
  const size_t n = spec.numel();
  if (spec.init_std <= 0) {
    for (size_t i = 0; i < n; ++i) out[i] = spec.init_value;
    return;
  }
  const uint64_t key = XXH3_64bits_withSeed(spec.name.data(), spec.name.size(), seed);
  // Box-Muller on two counter-derived uniforms per element; double precision so the result
  // does not depend on libm's float paths.
  for (size_t i = 0; i < n; ++i) {
    const uint64_t a = splitmix64(key ^ splitmix64(2 * i));
    const uint64_t b = splitmix64(key ^ splitmix64(2 * i + 1));
    const double r = std::sqrt(-2.0 * std::log(uniform(a)));
    const double z = r * std::cos(2.0 * M_PI * uniform(b));
    out[i] = static_cast<float>(z * spec.init_std);
  }
}

}  // namespace conveyor::model
