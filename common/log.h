// Logging: every line carries the rank and stage of the process that wrote it.
//
// Level from the environment: CONVEYOR_LOG=trace|debug|info|warn|error|off (default info;
// anything else is refused with a usage error, exit 2).
// Thread safety: all functions may be called from any thread.
#pragma once

#include <spdlog/spdlog.h>

namespace conveyor::log {

inline constexpr const char* kLevelNames[] = {"trace", "debug", "info", "warn", "error", "off"};

// The level CONVEYOR_LOG names (info when unset or empty). Throws Error(kUsage) for any other
// value.
spdlog::level::level_enum level_from_env();

// Sets the "[rank R stage S]" prefix and the level; call once at start-up, before threads
// start. rank < 0 means a single-process tool (no prefix). Throws as level_from_env().
void init(int rank = -1, int stage = -1);

}  // namespace conveyor::log

#define CONVEYOR_LOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define CONVEYOR_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define CONVEYOR_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define CONVEYOR_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define CONVEYOR_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
