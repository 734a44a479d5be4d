// A --ckpt-dir that no checkpoint could be committed to is refused at start-up with exit 2,
// before any step is trained (it used to fail with exit 1 after the last step): a regular
// file, a directory this user cannot write, a LATEST that is a directory.
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/integration/checkpoint/train_helpers.h"

namespace fs = std::filesystem;
using namespace conveyor::test;
using namespace conveyor::test::ckpt;

namespace {

// Exit 2, the message names `what`, and no step ran (the metrics file stayed empty).
void require_refused_at_start(const RunResult& r, const fs::path& metrics,
                              const std::vector<std::string>& what) {
  INFO(r.output);
  CHECK(r.exit_code == 2);
  for (const auto& w : what) CHECK_THAT(r.output, Catch::Contains(w));
  CHECK((!fs::exists(metrics) || fs::file_size(metrics) == 0));
}

}  // namespace

TEST_CASE("a --ckpt-dir that is a regular file is refused at start-up",
          "[checkpoint][bad-input][startup]") {
  TempDir dir;
  const auto file = dir / "not-a-dir";
  write_file(file, "x");
  const auto metrics = dir / "m.jsonl";
  require_refused_at_start(
      train(1, {"--steps", "3", "--ckpt-dir", file.string(), "--metrics", metrics.string()}),
      metrics, {file.string(), "not a directory"});
}

TEST_CASE("a LATEST that is a directory is refused at start-up",
          "[checkpoint][bad-input][startup]") {
  TempDir dir;
  const auto root = dir / "ckpt";
  fs::create_directories(root / "LATEST");
  const auto metrics = dir / "m.jsonl";
  require_refused_at_start(
      train(1, {"--steps", "3", "--ckpt-dir", root.string(), "--metrics", metrics.string()}),
      metrics, {(root / "LATEST").string(), "not a regular file"});
  CHECK(fs::is_directory(root / "LATEST"));  // left as it was
}

TEST_CASE("a --ckpt-dir this user cannot write is refused at start-up",
          "[checkpoint][bad-input][startup]") {
  TempDir dir;
  const auto readonly = dir / "readonly";
  fs::create_directory(readonly);
  fs::permissions(readonly, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                                fs::perms::group_exec | fs::perms::others_read |
                                fs::perms::others_exec);
  std::vector<std::string> argv;
  if (geteuid() == 0) {
    // The permission bits do not stop root: run the job as nobody, who may enter the test's
    // directory but not write in it.
    fs::permissions(dir.path(), fs::perms::others_exec | fs::perms::others_read,
                    fs::perm_options::add);
    argv = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CONVEYOR_BIN};
  } else {
    argv = {CONVEYOR_BIN};
  }
  // (No --metrics: that job could not write one either. Before this check existed, the run
  // trained every step and then failed to commit, with exit 1.)
  for (const auto& target : {readonly, readonly / "sub"}) {
    INFO(target.string());
    auto args = argv;
    for (const auto& a : train_args(1, {"--steps", "3", "--ckpt-dir", target.string()})) {
      args.push_back(a);
    }
    auto r = run_program(args, {}, 60);
    INFO(r.output);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.output, Catch::Contains(target.string()) && Catch::Contains("Permission denied"));
    CHECK_FALSE(fs::exists(target / "step_000000003"));
  }
}
