// Helpers shared by tests: temporary directories and running the conveyor binary.
#pragma once

#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"

namespace conveyor::test {

// A fresh directory under $TMPDIR, removed (recursively) when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// A launch environment for one scope: unsets the variables options_from_env reads (rank,
// world size and local rank of torchrun, Slurm and Open MPI; the rendezvous address and port;
// the CONVEYOR_* job settings), sets `vars`, and restores every old value when it dies. For
// tests that read the environment in this process; not thread-safe (setenv).
class ScopedEnv {
 public:
  explicit ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

struct RunResult {
  int exit_code = -1;  // process exit code, or 128+signal
  std::string output;  // stdout and stderr interleaved
};

// Runs the built `conveyor` binary with the given arguments (no shell), extra environment
// entries "NAME=value", and a deadline in seconds after which it is killed (exit 137).
RunResult run_conveyor(const std::vector<std::string>& args,
                       const std::vector<std::string>& env = {}, double timeout_s = 120);

// Runs any program (argv[0] searched in PATH) the same way.
RunResult run_program(const std::vector<std::string>& argv,
                      const std::vector<std::string>& env = {}, double timeout_s = 120);

// Writes `text` to `path`.
void write_file(const std::filesystem::path& path, const std::string& text);
std::string read_file(const std::filesystem::path& path);

// `conveyor train` flags for a tiny model (d=16, 2 heads, T=16) that trains a step in a few
// milliseconds, without progress lines: --layers, --dim, --heads, --seq, --microbatches,
// --micro-batch-size, --print-every 0. Callers add steps, stages and the rest.
// GPT-2 small's shape (12 layers, d 768, 12 heads, T 1024, V 50257), for the tests that
// reason about real sizes.
model::ModelConfig gpt2_small();

struct TinyModel {
  int layers = 4;
  int microbatches = 4;
  int micro_batch_size = 2;
};
std::vector<std::string> tiny_model_args(const TinyModel& m = {});

// Appends `more` to `args`.
std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more);

// The raw text of every "loss" in a metrics file (%.9g round-trips a float: equal text is
// equal bits). Fails the test when a line is not valid JSON.
std::vector<std::string> loss_texts(const std::string& metrics_path);

// The raw text of `key` in every metrics line that has it (e.g. "val_loss" rows).
std::vector<std::string> field_texts(const std::string& metrics_path, const std::string& key);

// `s` in single quotes for sh (embedded quotes escaped).
std::string shell_quoted(const std::string& s);

// `argv` as one sh command line, every word quoted.
std::string shell_command(const std::vector<std::string>& argv);

// The lines of `text`, without their newlines (and without empty ones if `skip_empty`).
std::vector<std::string> lines_of(const std::string& text, bool skip_empty = false);

// The checksum (xxh3, from the manifest) of every parameter and Adam moment in the latest
// step of checkpoint root `ckpt`, by dataset path: equal maps are equal training states.
std::map<std::string, std::string> state_checksums(const std::filesystem::path& ckpt);
}  // namespace conveyor::test
