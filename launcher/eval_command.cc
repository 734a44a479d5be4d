// PLACEHOLDER: replaced by the real `conveyor eval` implementation.
#include "common/error.h"
#include "launcher/commands.h"

namespace conveyor::cli {

void add_eval(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand("eval", "(not built yet)");
  sub->callback([&run] {
    run = [] { throw Error(ErrorKind::kUsage, "conveyor eval is not built yet"); return 1; };
  });
}

}  // namespace conveyor::cli
