// Small pieces shared by the one-host supervisor and the multi-host launcher.
#pragma once

#include <string>
#include <vector>

namespace conveyor::cli {

// A fresh 128-bit job secret, as 32 hex digits, from /dev/urandom.
std::string random_token();

// The path of the running conveyor binary (/proc/self/exe).
std::string self_exe();

// `word` quoted for a POSIX shell ('...' with embedded quotes escaped).
std::string shell_quote(const std::string& word);

// The words of `command` (split at spaces), for --rsh "ssh -F cfg". Throws Error(kUsage) for
// an empty command.
std::vector<std::string> split_command(const std::string& command, const char* flag);

}  // namespace conveyor::cli
