// Logging: every line carries the rank and stage of the process that wrote it.
//
// Level from the environment: CONVEYOR_LOG=trace|debug|info|warn|error (default info).
// Thread safety: all functions may be called from any thread.
#pragma once

#include <spdlog/spdlog.h>

namespace conveyor::log {

// Sets the "[rank R stage S]" prefix; call once at start-up, before threads start.
// rank < 0 means a single-process tool (no prefix).
void init(int rank = -1, int stage = -1);

}  // namespace conveyor::log

#define CONVEYOR_LOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define CONVEYOR_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define CONVEYOR_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define CONVEYOR_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define CONVEYOR_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
