// One way to read a number that comes from outside the program: a flag, an environment
// variable, a TOML value or a JSON field. Durations, sizes and counts all go through here, so
// that nan, inf, negatives, fractions where a count is meant and values that would overflow
// a later conversion are refused at start-up with exit 2, and every message has one shape:
//
//   --grace 'nan' is not a number of seconds in [0, 86400]
//   environment variable CONVEYOR_CONNECT_TIMEOUT 'inf' is not a number of seconds in ...
//
// `what` names the source as the user wrote it ("--grace", "environment variable X",
// "config.json field n_layer"); `unit` names what the number counts ("seconds", "ranks").
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace conveyor {

// The longest duration any setting may ask for: a week. Longer is surely a typo, and every
// duration fits in a std::chrono::milliseconds (and a poll timeout's int) with room to spare.
inline constexpr double kMaxSettingSeconds = 7 * 24 * 3600;

// The whole of `text` as a finite decimal number in [min, max] (no trailing garbage, no
// hex, no nan or inf). Throws Error(kUsage) otherwise.
double parse_real(std::string_view text, std::string_view what, double min, double max,
                  std::string_view unit);

// The whole of `text` as a whole number in [min, max] (digits with an optional leading '-';
// no fraction, no exponent, nothing past the range of int64). Throws Error(kUsage).
int64_t parse_integer(std::string_view text, std::string_view what, int64_t min, int64_t max,
                      std::string_view unit);

// The whole of `text` as a whole number in [0, 2^64 - 1]: digits only. Throws Error(kUsage),
// also when it is larger (never clamps).
uint64_t parse_unsigned(std::string_view text, std::string_view what, std::string_view unit);

// Checks a number already converted by someone else (a TOML or JSON reader): finite and in
// [min, max]. Returns it, or throws Error(kUsage) naming `what`, the value and the range.
double require_real(double value, std::string_view what, double min, double max,
                    std::string_view unit);

// Checks that `value` is a whole number in [min, max] and returns it as an int64. A double
// that is not whole (2.5), not finite or out of range is refused, never truncated.
int64_t require_integer(double value, std::string_view what, int64_t min, int64_t max,
                        std::string_view unit);
int64_t require_integer(int64_t value, std::string_view what, int64_t min, int64_t max,
                        std::string_view unit);

// The message of the errors above, for callers that report through another channel (a
// CLI11 validator returns it as text): "'<text>' is not a number of <unit> in [min, max]".
std::string out_of_range_text(std::string_view text, double min, double max, std::string_view unit);

}  // namespace conveyor
