// PLACEHOLDER: replaced by the real `conveyor schedule` implementation.
#include "common/error.h"
#include "launcher/commands.h"

namespace conveyor::cli {

void add_schedule(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand("schedule", "(not built yet)");
  sub->callback([&run] {
    run = [] { throw Error(ErrorKind::kUsage, "conveyor schedule is not built yet"); return 1; };
  });
}

}  // namespace conveyor::cli
