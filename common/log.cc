#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <string>

#include "common/error.h"

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

void init(int rank, int stage) {
  const auto level = level_from_env();  // before the logger exists: a bad value throws
  auto logger = spdlog::stderr_color_mt("conveyor");
  std::string prefix;
  if (rank >= 0)
    prefix = "[rank " + std::to_string(rank) + " stage " + std::to_string(stage) + "] ";
  logger->set_pattern("%H:%M:%S.%e %^%l%$ " + prefix + "%v");
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace conveyor::log
