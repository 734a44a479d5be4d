// Bad checkpoints given to `conveyor train --resume` and `conveyor eval`: exit 2 with a
// message that names what is wrong. (A flipped byte under `conveyor ckpt verify` is covered by
// ckpt_cli_test.cc; checksum corruption by tests/unit/checkpoint/corruption_test.cc.)
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/integration/checkpoint/train_helpers.h"

namespace fs = std::filesystem;
using namespace conveyor::test;
using namespace conveyor::test::ckpt;

namespace {

// A committed 1-stage checkpoint of the tiny model after 4 steps, in <dir>/ckpt.
fs::path make_checkpoint(const TempDir& dir) {
  auto r = train(1, {"--steps", "4", "--ckpt-dir", (dir / "ckpt").string()});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  REQUIRE(latest(dir / "ckpt") == "step_000000004");
  return dir / "ckpt";
}

void expect_usage_error(const RunResult& r, const std::vector<std::string>& must_mention) {
  INFO(r.output);
  CHECK(r.exit_code == 2);
  for (const auto& s : must_mention) CHECK_THAT(r.output, Catch::Contains(s));
}

// Replaces a shard by a file of the same size that is not HDF5 (so the size check passes and
// the HDF5 check is what fails).
void replace_with_garbage(const fs::path& shard) {
  const auto size = fs::file_size(shard);
  fs::remove(shard);
  write_file(shard, std::string(size, 'x'));
}

}  // namespace

TEST_CASE("resuming with a different model configuration names the field and both values",
          "[checkpoint][bad-input]") {
  TempDir dir;
  const auto root = make_checkpoint(dir);
  expect_usage_error(train(1, {"--steps", "8", "--ckpt-dir", root.string(), "--dim", "32"}),
                     {"dim = 16", "--dim 32", "step_000000004"});
  expect_usage_error(train(1, {"--steps", "8", "--ckpt-dir", root.string(), "--layers", "2"}),
                     {"layers = 4", "--layers 2"});
  // Nothing was written by the refused runs.
  CHECK(latest(root) == "step_000000004");
  CHECK_FALSE(fs::exists(root / "step_000000008"));
}

TEST_CASE("resuming from a PATH without a committed step exits 2", "[checkpoint][bad-input]") {
  TempDir dir;
  const auto empty = dir / "empty";
  fs::create_directories(empty / ".tmp-step_000000004");  // an unfinished save is not a step
  expect_usage_error(train(1, {"--steps", "4", "--resume", empty.string()}),
                     {empty.string(), "neither a checkpoint step"});
  expect_usage_error(train(1, {"--steps", "4", "--resume", (dir / "missing").string()}),
                     {(dir / "missing").string(), "no such file or directory"});
}

TEST_CASE("a shard that is not HDF5 or cannot be read is named, for train and eval",
          "[checkpoint][bad-input]") {
  TempDir dir;
  const auto root = make_checkpoint(dir);
  const auto step = root / "step_000000004";
  const auto shard = step / "stage_00000.h5";
  const auto text = dir / "text.txt";
  write_file(text, std::string(4096, 'a'));

  SECTION("not HDF5") {
    replace_with_garbage(shard);
    expect_usage_error(train(1, {"--steps", "8", "--resume", step.string()}),
                       {"stage_00000.h5", "not an HDF5 file"});
    expect_usage_error(run_conveyor({"eval", "--ckpt", root.string(), "--data", text.string()}),
                       {"stage_00000.h5", "not an HDF5 file"});
  }
  SECTION("unreadable") {
    if (geteuid() == 0) {
      // chmod 000 does not stop root from reading; a directory in the shard's place does.
      WARN(
          "running as root: chmod 000 cannot make a file unreadable, so the shard is "
          "replaced by a directory of the same name instead");
      fs::remove(shard);
      fs::create_directory(shard);
    } else {
      fs::permissions(shard, fs::perms::none);
    }
    expect_usage_error(train(1, {"--steps", "8", "--resume", step.string()}), {"stage_00000.h5"});
    expect_usage_error(run_conveyor({"eval", "--ckpt", root.string(), "--data", text.string()}),
                       {"stage_00000.h5"});
  }
}

TEST_CASE("conveyor eval with a bad --ckpt exits 2 naming it", "[checkpoint][bad-input][eval]") {
  TempDir dir;
  const auto text = dir / "text.txt";
  write_file(text, std::string(4096, 'a'));
  const auto missing = dir / "missing";
  expect_usage_error(run_conveyor({"eval", "--ckpt", missing.string(), "--data", text.string()}),
                     {missing.string(), "does not exist"});
  const auto empty = dir / "empty";
  fs::create_directory(empty);
  expect_usage_error(run_conveyor({"eval", "--ckpt", empty.string(), "--data", text.string()}),
                     {empty.string(), "nor a conveyor checkpoint"});
  const auto garbled = dir / "garbled";
  fs::create_directory(garbled);
  write_file(garbled / "LATEST", "not a step\n");
  expect_usage_error(run_conveyor({"eval", "--ckpt", garbled.string(), "--data", text.string()}),
                     {"LATEST"});
}
