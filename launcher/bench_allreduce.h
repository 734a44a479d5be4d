// `conveyor bench allreduce`: registered on the `bench` subcommand by add_bench.
#pragma once

#include "launcher/commands.h"

namespace conveyor::cli {

void add_bench_allreduce(CLI::App& bench, Runner& run);

}  // namespace conveyor::cli
