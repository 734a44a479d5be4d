// PLACEHOLDER: replaced by the real `conveyor doctor` implementation.
#include "common/error.h"
#include "launcher/commands.h"

namespace conveyor::cli {

void add_doctor(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand("doctor", "(not built yet)");
  sub->callback([&run] {
    run = [] { throw Error(ErrorKind::kUsage, "conveyor doctor is not built yet"); return 1; };
  });
}

}  // namespace conveyor::cli
