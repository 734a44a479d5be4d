// `--config FILE.toml`: every flag of a subcommand may also be set in a TOML file.
//
// Keys are the long flag names without dashes-prefix ("micro-batch-size = 8"; underscores
// work too: "micro_batch_size = 8"). A flag given on the command line wins over the file.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace conveyor::cli {

// Applies the file's values to the options of `command` that were not given on the command
// line. Throws Error(kUsage) for a missing file (naming it), and for a malformed file, an
// unknown key (naming it), a table or array where a value belongs, or a value the option
// rejects, each naming the file, line and column.
void apply_config_file(CLI::App& command, const std::string& path);

}  // namespace conveyor::cli
