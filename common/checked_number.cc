#include "common/checked_number.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "common/printable.h"

namespace conveyor {

namespace {

// A user's text in a message: escaped (it may hold terminal codes) and cut short.
std::string quoted(std::string_view text) {
  return fmt::format("'{}'", printable(text, 64));
}

[[noreturn]] void refuse(std::string_view what, const std::string& text, double min, double max,
                         std::string_view unit) {
  throw Error(ErrorKind::kUsage,
              fmt::format("{} {}", what, out_of_range_text(text, min, max, unit)));
}

// Shows a bound without a trailing ".0" or an exponent for whole numbers users type.
std::string bound(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{:g}", v);
}

}  // namespace

std::string out_of_range_text(std::string_view text, double min, double max,
                              std::string_view unit) {
  return fmt::format("{} is not a number of {} in [{}, {}]", quoted(text), unit, bound(min),
                     bound(max));
}

double parse_real(std::string_view text, std::string_view what, double min, double max,
                  std::string_view unit) {
  const std::string shown(text);
  // from_chars in general format: decimal or exponent, no "0x", no leading '+' or space. It
  // also reads "nan" and "inf", which the finiteness check then refuses.
  double value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(value) || value < min ||
      value > max)
    refuse(what, shown, min, max, unit);
  return value;
}

int64_t parse_integer(std::string_view text, std::string_view what, int64_t min, int64_t max,
                      std::string_view unit) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value, 10);
  if (text.empty() || ec != std::errc() || ptr != end || value < min || value > max)
    refuse(what, std::string(text), static_cast<double>(min), static_cast<double>(max), unit);
  return value;
}

uint64_t parse_unsigned(std::string_view text, std::string_view what, std::string_view unit) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value, 10);
  if (text.empty() || text.front() == '-' || ec != std::errc() || ptr != end) {
    throw Error(ErrorKind::kUsage,
                fmt::format("{} {} is not a whole number of {} in [0, {}]", what, quoted(text),
                            unit, std::numeric_limits<uint64_t>::max()));
  }
  return value;
}

double require_real(double value, std::string_view what, double min, double max,
                    std::string_view unit) {
  if (!std::isfinite(value) || value < min || value > max)
    refuse(what, fmt::format("{}", value), min, max, unit);
  return value;
}

int64_t require_integer(double value, std::string_view what, int64_t min, int64_t max,
                        std::string_view unit) {
  // Compared as doubles first: a cast of an out-of-range double to int64 is undefined.
  if (!std::isfinite(value) || value != std::floor(value) || value < static_cast<double>(min) ||
      value > static_cast<double>(max))
    refuse(what, fmt::format("{}", value), static_cast<double>(min), static_cast<double>(max),
           unit);
  return require_integer(static_cast<int64_t>(value), what, min, max, unit);
}

int64_t require_integer(int64_t value, std::string_view what, int64_t min, int64_t max,
                        std::string_view unit) {
  if (value < min || value > max)
    refuse(what, fmt::format("{}", value), static_cast<double>(min), static_cast<double>(max),
           unit);
  return value;
}

}  // namespace conveyor
