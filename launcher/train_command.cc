// PLACEHOLDER: replaced by the real `conveyor train` implementation.
#include "common/error.h"
#include "launcher/commands.h"

namespace conveyor::cli {

void add_train(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand("train", "(not built yet)");
  sub->callback([&run] {
    run = [] { throw Error(ErrorKind::kUsage, "conveyor train is not built yet"); return 1; };
  });
}

}  // namespace conveyor::cli
