#include "common/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "common/error.h"
#include "common/printable.h"

namespace conveyor::log {

spdlog::level::level_enum level_from_env() {
  const char* text = std::getenv("CONVEYOR_LOG");
  if (text == nullptr || *text == '\0') return spdlog::level::info;
  const std::string name(text);
  for (const char* known : kLevelNames) {
    if (name == known) return spdlog::level::from_str(name);
  }
  throw Error(ErrorKind::kUsage,
              fmt::format("CONVEYOR_LOG='{}' is not a log level", name.substr(0, 64)),
              "use one of trace, debug, info, warn, error, off, or unset it for info");
}

namespace {

// The message of a log line made safe for a terminal (printable.h): a file name in it may
// hold escape codes.
class TerminalSafeMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string safe = terminal_text({msg.payload.data(), msg.payload.size()});
    dest.append(safe.data(), safe.data() + safe.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<TerminalSafeMessage>();
  }
};

}  // namespace

void init(int rank, int stage) {
  const auto level = level_from_env();  // before the logger exists: a bad value throws
  auto logger = spdlog::stderr_color_mt("conveyor");
  std::string prefix;
  if (rank >= 0)
    prefix = "[rank " + std::to_string(rank) + " stage " + std::to_string(stage) + "] ";
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<TerminalSafeMessage>('*').set_pattern("%H:%M:%S.%e %^%l%$ " + prefix + "%*");
  logger->set_formatter(std::move(formatter));
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace conveyor::log
