#include "launcher/cli_number.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "common/checked_number.h"
#include "common/error.h"
#include "common/printable.h"

namespace conveyor::cli {

namespace {

// Runs `check` on `text`, which it rewrites in canonical form; returns the reason it was
// refused ("" when it is fine). The checked parser's message starts with the name of what
// it read, empty here for CLI11 to put "--flag: " in front.
template <class Check>
std::string run_check(const Check& check, std::string& text) {
  try {
    text = check(text);
    return {};
  } catch (const Error& e) {
    const std::string& m = e.message();
    return m.substr(std::min(m.find_first_not_of(' '), m.size()));
  }
}

template <class Check>
CLI::Validator validator(Check check, const std::string& description) {
  return CLI::Validator([check](std::string& text) { return run_check(check, text); }, description);
}

}  // namespace

CLI::Validator real_in(double min, double max, const std::string& unit, const std::string& flag) {
  return validator(
      [=](const std::string& t) { return fmt::format("{}", parse_real(t, flag, min, max, unit)); },
      "NUMBER");
}

CLI::Validator integer_in(int64_t min, int64_t max, const std::string& unit) {
  return validator(
      [=](const std::string& t) { return fmt::format("{}", parse_integer(t, "", min, max, unit)); },
      "INT");
}

CLI::Validator unsigned_number(const std::string& unit) {
  return validator(
      [=](const std::string& t) { return fmt::format("{}", parse_unsigned(t, "", unit)); }, "UINT");
}

std::string check_unsigned(std::string& text, const std::string& unit) {
  return run_check(
      [&](const std::string& t) { return fmt::format("{}", parse_unsigned(t, "", unit)); }, text);
}

CLI::Validator decimal_int() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          text = fmt::format("{}", parse_integer(text, "", std::numeric_limits<int>::min(),
                                                 std::numeric_limits<int>::max(), "-"));
          return {};
        } catch (const Error&) {
          return fmt::format("'{}' is not a whole number in decimal that an int holds",
                             printable(text, 64));
        }
      },
      "INT");
}

CLI::Validator seconds_at_least(double min) {
  return real_in(min, kMaxSettingSeconds, "seconds");
}

}  // namespace conveyor::cli
