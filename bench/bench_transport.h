// `conveyor bench transport`: registered on the `bench` subcommand by add_bench.
#pragma once

#include "bench/bench_command.h"

namespace conveyor::cli {

void add_bench_transport(CLI::App& bench, BenchRunner& run);

}  // namespace conveyor::cli
