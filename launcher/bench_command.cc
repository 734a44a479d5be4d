// PLACEHOLDER: replaced by the real `conveyor bench` implementation.
#include "common/error.h"
#include "launcher/commands.h"

namespace conveyor::cli {

void add_bench(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand("bench", "(not built yet)");
  sub->callback([&run] {
    run = [] { throw Error(ErrorKind::kUsage, "conveyor bench is not built yet"); return 1; };
  });
}

}  // namespace conveyor::cli
