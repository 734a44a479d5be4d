// CLI11 validators over common/checked_number.h: a numeric flag's text is checked by the one
// number parser before CLI11 converts it, so `--grace nan`, `--nproc 1e9` and `--seed -1`
// are refused with exit 2 and one message shape ("--grace: 'nan' is not a number of seconds
// in [0, 604800]").
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

namespace conveyor::cli {

// A finite number of `unit` in [min, max].
CLI::Validator real_in(double min, double max, const std::string& unit);

// A whole number of `unit` in [min, max].
CLI::Validator integer_in(int64_t min, int64_t max, const std::string& unit);

// A duration in seconds in [min, kMaxSettingSeconds].
CLI::Validator seconds_at_least(double min);

}  // namespace conveyor::cli
