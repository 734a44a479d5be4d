// The subcommands of the `conveyor` binary. Each add_* function registers one subcommand
// on the CLI11 app; when that subcommand is chosen, parsing stores in `run` the function
// that carries it out and returns its exit code. main() calls it inside the one place that
// turns conveyor::Error into an exit code.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace conveyor::cli {

using Runner = std::function<int()>;

void add_train(CLI::App& app, Runner& run);     // conveyor train ...        (train_command.cc)
void add_eval(CLI::App& app, Runner& run);      // conveyor eval ...         (eval_command.cc)
void add_launch(CLI::App& app, Runner& run);    // conveyor launch ...       (launch_command.cc)
void add_schedule(CLI::App& app, Runner& run);  // conveyor schedule ...     (schedule_command.cc)
void add_ckpt(CLI::App& app, Runner& run);      // conveyor ckpt ...         (ckpt_command.cc)
void add_doctor(CLI::App& app, Runner& run);    // conveyor doctor           (doctor_command.cc)
void add_tokenize(CLI::App& app, Runner& run);  // conveyor tokenize ...     (tokenize_command.cc)
// `conveyor bench ...` is registered by add_bench in bench/bench_command.h (its own library).

}  // namespace conveyor::cli
