#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <string>

namespace conveyor::log {

void init(int rank, int stage) {
  auto logger = spdlog::stderr_color_mt("conveyor");
  std::string prefix;
  if (rank >= 0)
    prefix = "[rank " + std::to_string(rank) + " stage " + std::to_string(stage) + "] ";
  logger->set_pattern("%H:%M:%S.%e %^%l%$ " + prefix + "%v");
  const char* level = std::getenv("CONVEYOR_LOG");
  logger->set_level(level ? spdlog::level::from_str(level) : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace conveyor::log
