// `conveyor bench schedule`: P real stage processes on the real transport, compute simulated
// by sleeping, so a schedule's bubble can be measured with more stages than cores.
#pragma once

#include "bench/bench_command.h"

namespace conveyor::cli {

void add_bench_schedule(CLI::App& bench, BenchRunner& run);

}  // namespace conveyor::cli
