// `conveyor bench ...` (bench_command.cc and the bench_*.cc it registers), built as its own
// library, conveyor_bench, so the core CLI library carries no benchmark code. Registered like
// the core subcommands (launcher/commands.h): when `bench ...` is chosen, parsing stores in
// `run` the function that carries it out and returns its exit code.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace conveyor::cli {

using BenchRunner = std::function<int()>;

void add_bench(CLI::App& app, BenchRunner& run);  // conveyor bench ...

}  // namespace conveyor::cli
