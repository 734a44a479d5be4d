// --resume auto must not silently start over when every committed checkpoint is damaged.
#include <catch2/catch.hpp>

#include <filesystem>

#include "tests/test_util.h"

using conveyor::test::run_conveyor;
using conveyor::test::TempDir;
using conveyor::test::write_file;

TEST_CASE("auto-resume refuses to start over when no committed checkpoint verifies",
          "[checkpoint]") {
  TempDir dir;
  const auto root = dir / "ckpt";
  const std::vector<std::string> args = {
      "train", "--layers",      "2",  "--dim",          "16",         "--heads",
      "2",     "--seq",         "16", "--microbatches", "2",          "--micro-batch-size",
      "2",     "--print-every", "0",  "--ckpt-dir",     root.string()};
  auto first = args;
  first.insert(first.end(), {"--steps", "4"});
  REQUIRE(run_conveyor(first).exit_code == 0);
  const auto shard = root / "step_000000004" / "stage_00000.h5";
  const auto size = std::filesystem::file_size(shard);
  write_file(shard, std::string(size, 'x'));  // same size, not HDF5

  auto again = args;
  again.insert(again.end(), {"--steps", "8"});
  auto r = run_conveyor(again);
  INFO(r.output);
  REQUIRE(r.exit_code == 2);
  REQUIRE(r.output.find("none of them verifies") != std::string::npos);
  REQUIRE_FALSE(std::filesystem::exists(root / "step_000000008"));
  // Starting over is still possible when asked for.
  again.insert(again.end(), {"--resume", "none"});
  REQUIRE(run_conveyor(again).exit_code == 0);
}
