// conveyor: pipeline-parallel GPT training. The only place an Error becomes an exit code.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>

#include "bench/bench_command.h"
#include "checkpoint/fault_injection.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/printable.h"
#include "common/version.h"
#include "launcher/commands.h"

namespace {

// TEST HOOK: the crash tests arm checkpoint faults in a child `conveyor` through the
// CONVEYOR_FAULT_* variables (checkpoint/fault_injection.h). This is the one place they are
// read: once, before any thread starts.
void install_fault_hooks_from_environment() {
  using namespace conveyor::checkpoint;
  fault::FaultHooks hooks;
  for (const char* point : fault::kPoints) {
    if (const char* spec = std::getenv(point)) hooks.arm(point, spec);
  }
  fault::install(std::move(hooks));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace conveyor;
  install_fault_hooks_from_environment();
  CLI::App app{"conveyor: pipeline-parallel GPT training (see README.md and docs/)", "conveyor"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("conveyor ") + kVersion);
  cli::Runner run;
  cli::add_train(app, run);
  cli::add_eval(app, run);
  cli::add_launch(app, run);
  cli::add_schedule(app, run);
  cli::add_ckpt(app, run);
  cli::add_doctor(app, run);
  cli::add_tokenize(app, run);
  cli::add_bench(app, run);
  // CLI11 answers an unknown command with "A subcommand is required"; name it instead.
  if (argc > 1 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
      known = known || sub->get_name() == argv[1];
    }
    if (!known) {
      std::fprintf(stderr,
                   "conveyor: error: unknown command '%.64s' (the commands are %s; see "
                   "conveyor --help)\n",
                   argv[1], names.c_str());
      return kExitUsage;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    // CLI11 returns 0 for --help/--version and its own codes for errors; the contract says 2.
    return code == 0 ? kExitOk : kExitUsage;
  } catch (const Error& e) {
    std::fprintf(stderr, "conveyor: error: %s\n", terminal_text(describe(e)).c_str());
    return e.exit_code();
  }
  try {
    return run ? run() : kExitUsage;
  } catch (const Error& e) {
    std::fprintf(stderr, "conveyor: error: %s\n", terminal_text(describe(e)).c_str());
    return e.exit_code();
  } catch (const std::filesystem::filesystem_error& e) {
    // A path the user gave that the file system refuses (a link loop, a file where a folder
    // belongs): theirs to fix, so exit 2. Anything else the file system says is a failure.
    const Error error = from_filesystem_error(e);
    std::fprintf(stderr, "conveyor: error: %s\n", terminal_text(describe(error)).c_str());
    return error.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "conveyor: internal error: %s\n", terminal_text(e.what()).c_str());
    return kExitRuntime;
  }
}
