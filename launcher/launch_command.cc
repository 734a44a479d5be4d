// PLACEHOLDER: replaced by the real `conveyor launch` implementation.
#include "common/error.h"
#include "launcher/commands.h"

namespace conveyor::cli {

void add_launch(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand("launch", "(not built yet)");
  sub->callback([&run] {
    run = [] { throw Error(ErrorKind::kUsage, "conveyor launch is not built yet"); return 1; };
  });
}

}  // namespace conveyor::cli
