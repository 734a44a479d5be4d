// `conveyor bench ...` (bench_command.cc and the bench_*.cc it registers), built as its own
// library, conveyor_bench, so the core CLI library (conveyor_cli) carries no benchmark code.
#pragma once

#include "launcher/commands.h"

namespace conveyor::cli {

void add_bench(CLI::App& app, Runner& run);  // conveyor bench ...

}  // namespace conveyor::cli
