// Commit protocol: LATEST, retention, interrupted commits and stale temporary directories.
#include <catch2/catch.hpp>

#include "checkpoint/checkpoint.h"
#include "common/error.h"
#include "tests/test_util.h"
#include "tests/unit/checkpoint/fake_model.h"

namespace fs = std::filesystem;
using namespace conveyor::checkpoint;
using namespace conveyor::checkpoint::testing;

namespace {

std::string latest_of(const fs::path& root) {
  return conveyor::test::read_file(root / "LATEST");
}

std::vector<std::string> entries(const fs::path& root) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("LATEST names the newest committed step", "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 10, 2);
  CHECK(latest_of(dir.path()) == "step_000000010\n");
  save_step(dir.path(), 20, 2);
  CHECK(latest_of(dir.path()) == "step_000000020\n");
  CHECK(find_latest(dir.path()) == dir.path() / "step_000000020");
  CHECK(resolve_step_dir(dir.path()) == dir.path() / "step_000000020");
}

TEST_CASE("retention keeps the K newest steps", "[checkpoint]") {
  conveyor::test::TempDir dir;
  for (int step = 1; step <= 5; ++step) save_step(dir.path(), step, 2, /*keep=*/2);
  CHECK(list_committed_steps(dir.path()) == std::vector<int64_t>{5, 4});
  CHECK(entries(dir.path()) ==
        std::vector<std::string>{"LATEST", "step_000000004", "step_000000005"});
}

TEST_CASE("retention with keep <= 0 keeps everything", "[checkpoint]") {
  conveyor::test::TempDir dir;
  for (int step = 1; step <= 3; ++step) save_step(dir.path(), step, 1, /*keep=*/0);
  CHECK(list_committed_steps(dir.path()) == std::vector<int64_t>{3, 2, 1});
}

TEST_CASE("retention never deletes the newest step nor the one just committed", "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 1, 1);
  save_step(dir.path(), 9, 1);
  // A run that resumed from step 1 commits step 5 while step 9 (another timeline) exists.
  save_step(dir.path(), 5, 1, /*keep=*/1);
  CHECK(list_committed_steps(dir.path()) == std::vector<int64_t>{9, 5});
  CHECK(latest_of(dir.path()) == "step_000000005\n");
  CHECK(apply_retention(dir.path(), 1, /*protect=*/9) == std::vector<int64_t>{5});
  CHECK(list_committed_steps(dir.path()) == std::vector<int64_t>{9});
}

TEST_CASE("an existing committed step is replaced by a new commit of the same step",
          "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 4, 2);
  save_step(dir.path(), 4, 1);  // e.g. after a fallback, with a different stage count
  CHECK(read_manifest(dir.path() / "step_000000004").num_shards == 1);
  CHECK(verify(dir.path() / "step_000000004").shards == 1);
  CHECK(entries(dir.path()) == std::vector<std::string>{"LATEST", "step_000000004"});
}

TEST_CASE("an interrupted commit is ignored and cleaned up", "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 5, 2);
  // Step 6: every shard written, but the process died before commit_step.
  write_all_shards(dir.path(), 6, 2);
  CHECK(latest_of(dir.path()) == "step_000000005\n");
  CHECK(find_latest(dir.path()) == dir.path() / "step_000000005");
  CHECK(list_committed_steps(dir.path()) == std::vector<int64_t>{5});
  conveyor::test::write_file(dir.path() / "LATEST.tmp", "step_000000006\n");

  CHECK(remove_stale_temp_dirs(dir.path()) == 2);
  CHECK(entries(dir.path()) == std::vector<std::string>{"LATEST", "step_000000005"});
  CHECK(remove_stale_temp_dirs(dir.path()) == 0);
}

TEST_CASE("a commit with a missing shard fails and leaves LATEST alone", "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 1, 2);
  auto tmp = begin_step(dir.path(), 2);
  auto tensors = fake_stage(0, 2, 2);
  write_shard(tmp, contents_of(tensors, 0, 2, 2));  // stage 1 never writes
  try {
    commit_step(dir.path(), 2, 2, fake_config(), "", 0);
    FAIL("expected an error");
  } catch (const conveyor::Error& e) {
    CHECK(e.kind() == conveyor::ErrorKind::kRuntime);
    CHECK_THAT(e.message(), Catch::Contains("stage 1"));
  }
  CHECK(latest_of(dir.path()) == "step_000000001\n");
  CHECK(list_committed_steps(dir.path()) == std::vector<int64_t>{1});
}

TEST_CASE("begin_step is idempotent and find_latest handles an empty root", "[checkpoint]") {
  conveyor::test::TempDir dir;
  auto root = dir.path() / "nested" / "ckpt";
  CHECK_FALSE(find_latest(root).has_value());
  auto a = begin_step(root, 3);
  auto b = begin_step(root, 3);
  CHECK(a == b);
  CHECK(a == root / ".tmp-step_000000003");
  CHECK(fs::is_directory(a));
  CHECK_FALSE(find_latest(root).has_value());
}

TEST_CASE("a link planted at a step's temporary name is not written through or committed into",
          "[checkpoint]") {
  conveyor::test::TempDir dir;
  const auto root = dir.path() / "ckpt";
  const auto victim = dir.path() / "victim";
  fs::create_directories(root);
  fs::create_directories(victim);
  conveyor::test::write_file(victim / "precious.txt", "precious\n");
  save_step(root, 1, 2);
  // Planted after start-up, where the next save creates its temporary directory.
  fs::create_directory_symlink(victim, root / ".tmp-step_000000002");
  save_step(root, 2, 2);
  CHECK(entries(victim) == std::vector<std::string>{"precious.txt"});
  CHECK(conveyor::test::read_file(victim / "precious.txt") == "precious\n");
  CHECK(fs::is_directory(fs::symlink_status(root / "step_000000002")));
  CHECK(verify(root / "step_000000002").shards == 2);

  // A link swapped in between the shards and the commit stops the commit.
  write_all_shards(root, 3, 2);
  fs::rename(root / ".tmp-step_000000003", dir.path() / "moved");
  fs::create_directory_symlink(victim, root / ".tmp-step_000000003");
  CHECK_THROWS_AS(commit_step(root, 3, 2, fake_config(), "fake-fingerprint", 0), conveyor::Error);
  CHECK(entries(victim) == std::vector<std::string>{"precious.txt"});
  CHECK(latest_of(root) == "step_000000002\n");
}
