// One error type for the whole project.
//
// An Error says what failed, where (file:line of the check), and what to do about it.
// Library code throws; only main() turns an Error into an exit code (see exit_code()).
// C, UCX, HDF5 and CUDA status codes are wrapped into an Error at the boundary by the
// folder that calls them.
#pragma once

#include "common/exit_code.h"

#include <fmt/format.h>

#include <source_location>
#include <stdexcept>
#include <string>

namespace conveyor {

// The kind decides the process exit code (DESIGN.md, Contracts).
enum class ErrorKind {
  kUsage,       // bad flag, config or input file: exit 2
  kRuntime,     // something failed while running: exit 1
  kPeerFailed,  // another rank died or aborted: exit 3
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message, std::string hint = {},
        std::source_location where = std::source_location::current());

  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  const std::string& hint() const { return hint_; }
  // "file.cc:123", for debugging; not part of the user-facing message.
  const std::string& where() const { return where_; }
  int exit_code() const;

 private:
  ErrorKind kind_;
  std::string message_;
  std::string hint_;
  std::string where_;
};

// Builds the user-facing text: "message (hint)".
std::string describe(const Error& e);

}  // namespace conveyor

// Throws a usage error (exit 2) with a formatted message when `cond` is false.
// Usage: CONVEYOR_REQUIRE(d % h == 0, "--dim {} is not divisible by --heads {}", d, h);
#define CONVEYOR_REQUIRE(cond, ...)                                                                \
  do {                                                                                             \
    if (!(cond)) throw ::conveyor::Error(::conveyor::ErrorKind::kUsage, fmt::format(__VA_ARGS__)); \
  } while (0)

// Throws a runtime error (exit 1) when `cond` is false; for invariants that do not vanish
// under NDEBUG.
#define CONVEYOR_CHECK(cond, ...)                                                         \
  do {                                                                                    \
    if (!(cond))                                                                          \
      throw ::conveyor::Error(::conveyor::ErrorKind::kRuntime, fmt::format(__VA_ARGS__)); \
  } while (0)
