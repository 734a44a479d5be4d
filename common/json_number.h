// Numbers read from JSON files conveyor did not write (a Hugging Face config.json) or that
// may be damaged (a manifest): through common/checked_number.h, so 4294967298 is refused as
// an int, never read as 2, and 1e10 is refused, never cast to -2147483648.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>

#include "common/checked_number.h"
#include "common/error.h"
#include "common/printable.h"

namespace conveyor {

// `value` as a whole number in [min, max]. Accepts a JSON integer, or a float that is whole
// (1e3); refuses anything else (a string, a fraction, an out-of-range value) with
// Error(kUsage) naming `what`.
inline int64_t json_integer(const nlohmann::json& value, std::string_view what, int64_t min,
                            int64_t max, std::string_view unit) {
  if (value.is_number_unsigned()) {
    const auto u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return require_integer(static_cast<double>(u), what, min, max, unit);
    return require_integer(static_cast<int64_t>(u), what, min, max, unit);
  }
  if (value.is_number_integer()) return require_integer(value.get<int64_t>(), what, min, max, unit);
  if (value.is_number_float()) return require_integer(value.get<double>(), what, min, max, unit);
  throw Error(ErrorKind::kUsage, fmt::format("{} is {}, not a whole number of {}", what,
                                             printable(value.dump(), 64), unit));
}

// `value` as a finite number in [min, max] (a JSON integer or float).
inline double json_real(const nlohmann::json& value, std::string_view what, double min, double max,
                        std::string_view unit) {
  if (!value.is_number())
    throw Error(ErrorKind::kUsage, fmt::format("{} is {}, not a number of {}", what,
                                               printable(value.dump(), 64), unit));
  return require_real(value.get<double>(), what, min, max, unit);
}

}  // namespace conveyor
