// A checkpoint write that the file system refuses (disk full, file too large) stops the run
// with exit 1 and the HDF5 error, leaves the earlier checkpoints intact, and does not crash
// on the way out (HDF5 1.10's exit-time clean-up used to: SIGSEGV in H5F__close_cb).
//
// The failed write comes from RLIMIT_FSIZE (prlimit --fsize) with SIGXFSZ ignored, so write(2)
// fails with EFBIG like it fails with ENOSPC on a full disk: no mount, no root needed. (A 3 MB
// tmpfs gives the same failure and the same crash.)
#include <catch2/catch.hpp>

#include "tests/integration/checkpoint/train_helpers.h"

namespace fs = std::filesystem;
using namespace conveyor::test;
using namespace conveyor::test::ckpt;

namespace {

// Runs conveyor with every file it writes limited to `max_bytes`.
RunResult run_with_file_size_limit(uint64_t max_bytes, const std::vector<std::string>& args) {
  // An ignored signal stays ignored across exec, so the write fails instead of killing.
  std::vector<std::string> argv = {"sh", "-c", "trap '' XFSZ; exec prlimit --fsize=\"$0\" \"$@\"",
                                   std::to_string(max_bytes), CONVEYOR_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, {}, 60);
}

}  // namespace

TEST_CASE("a checkpoint write that fails exits 1 with the error and keeps earlier checkpoints",
          "[checkpoint][crash][disk-full]") {
  TempDir dir;
  const auto root = dir / "ckpt";
  auto first = train(1, {"--steps", "4", "--exit-at-step", "2", "--ckpt-dir", root.string()});
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  const auto shard_bytes = fs::file_size(root / "step_000000002" / "stage_00000.h5");

  const bool async = GENERATE(false, true);
  INFO((async ? "async save" : "sync save"));
  auto extra =
      std::vector<std::string>{"--steps", "4", "--save-every", "1", "--ckpt-dir", root.string()};
  if (async) extra.push_back("--async-save");
  auto r = run_with_file_size_limit(shard_bytes / 2, train_args(1, extra));
  INFO(r.output);
  CHECK(r.exit_code == 1);  // not 139: no crash in HDF5's clean-up at exit
  CHECK_THAT(r.output, Catch::Contains("stage_00000.h5") && Catch::Contains("File too large"));
  CHECK(latest(root) == "step_000000002");
  CHECK_FALSE(fs::exists(root / "step_000000003"));
  auto verified = run_conveyor({"ckpt", "verify", root.string()});
  INFO(verified.output);
  CHECK(verified.exit_code == 0);
}
