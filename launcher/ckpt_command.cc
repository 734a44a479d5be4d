// PLACEHOLDER: replaced by the real `conveyor ckpt` implementation.
#include "common/error.h"
#include "launcher/commands.h"

namespace conveyor::cli {

void add_ckpt(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand("ckpt", "(not built yet)");
  sub->callback([&run] {
    run = [] { throw Error(ErrorKind::kUsage, "conveyor ckpt is not built yet"); return 1; };
  });
}

}  // namespace conveyor::cli
