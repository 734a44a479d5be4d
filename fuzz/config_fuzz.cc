// Fuzzes the TOML config loader with the real `conveyor train` flags: the input is written
// to a file and run as `conveyor train --config FILE --print-config` (which loads the file,
// validates every setting and prints the result, without training).
//
// Bad input must be refused with conveyor::Error or CLI11's ParseError, the two things
// main() turns into exit 2. Any other exception would reach the user as "internal error"
// (exit 1), so it is a finding: the target aborts.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/error.h"
#include "launcher/commands.h"

namespace fs = std::filesystem;
using namespace conveyor;

namespace {

const std::string& config_path() {
  static const std::string path =
      (fs::temp_directory_path() / ("conveyor-fuzz-config-" + std::to_string(getpid()) + ".toml"))
          .string();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // --print-config prints the settings; nobody needs to read them.
  if (!std::freopen("/dev/null", "w", stdout)) std::abort();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream out(config_path(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  CLI::App app{"conveyor", "conveyor"};
  app.require_subcommand(1);
  cli::Runner run;
  cli::add_train(app, run);
  std::vector<std::string> args = {"--print-config", config_path(), "--config", "train"};
  try {
    app.parse(args);  // CLI11 takes a vector in reverse order
    if (run) run();
  } catch (const CLI::ParseError&) {
  } catch (const Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "config fuzz: an exception main() reports as internal: %s\n", e.what());
    std::abort();
  }
  return 0;
}
