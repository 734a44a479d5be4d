// CLI11 validators over common/checked_number.h: a numeric flag's text is checked by the one
// number parser before CLI11 converts it, so `--grace nan`, `--nproc 1e9` and `--seed -1`
// are refused with exit 2 and one message shape ("--grace: 'nan' is not a number of seconds
// in [0, 604800]"). A text that passes is rewritten in canonical decimal form ("010" becomes
// "10"), because CLI11 itself would read a leading 0 as octal and "0x" as hex.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

namespace conveyor::cli {

// Register them with Option::transform, not check: CLI11 discards the rewrite of a check.
// CLI11 names the flag in front of the message, except for hidden options (group ""):
// give those their `flag` here.

// A finite number of `unit` in [min, max].
CLI::Validator real_in(double min, double max, const std::string& unit,
                       const std::string& flag = "");

// A whole number of `unit` in [min, max].
CLI::Validator integer_in(int64_t min, int64_t max, const std::string& unit);

// A whole number of `unit` in [0, 2^64 - 1] (never clamped).
CLI::Validator unsigned_number(const std::string& unit);

// What unsigned_number does, for a validator of one's own: "" when `text` is a whole number
// in [0, 2^64 - 1] (rewritten in canonical form), else the reason.
std::string check_unsigned(std::string& text, const std::string& unit);

// Any whole number an int holds, written in decimal: "010" is ten (CLI11 alone reads it as
// octal 8, and "0x10" as 16); ranges are the option's own checks.
CLI::Validator decimal_int();

// A duration in seconds in [min, kMaxSettingSeconds].
CLI::Validator seconds_at_least(double min);

}  // namespace conveyor::cli
