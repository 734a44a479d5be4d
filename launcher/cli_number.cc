#include "launcher/cli_number.h"

#include "common/checked_number.h"
#include "common/error.h"

namespace conveyor::cli {

namespace {

// Runs `check` on the flag's text; CLI11 wants the reason as text ("" when it is fine).
template <class Check>
CLI::Validator validator(Check check, const std::string& description) {
  return CLI::Validator(
      [check](std::string& text) -> std::string {
        try {
          check(text);
          return {};
        } catch (const Error& e) {
          return e.message();
        }
      },
      description);
}

}  // namespace

CLI::Validator real_in(double min, double max, const std::string& unit) {
  return validator([=](const std::string& t) { parse_real(t, "", min, max, unit); }, "NUMBER");
}

CLI::Validator integer_in(int64_t min, int64_t max, const std::string& unit) {
  return validator([=](const std::string& t) { parse_integer(t, "", min, max, unit); }, "INT");
}

CLI::Validator seconds_at_least(double min) {
  return real_in(min, kMaxSettingSeconds, "seconds");
}

}  // namespace conveyor::cli
