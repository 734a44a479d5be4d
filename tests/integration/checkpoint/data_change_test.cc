// Resuming onto other data or other batches is refused with exit 2 naming the setting, unless
// --allow-data-change; the same data elsewhere, and old checkpoints that recorded no data
// identity, still resume. A --ckpt-dir inside the --data folder is not read as data.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "tests/integration/checkpoint/train_helpers.h"

namespace fs = std::filesystem;
using namespace conveyor::test;
using namespace conveyor::test::ckpt;

namespace {

// 20000 bytes of deterministic byte-level text, different for each `seed`.
std::string text(int seed) {
  std::string s;
  for (int i = 0; s.size() < 20000; ++i) {
    s += fmt::format("line {} of text {}: the quick brown fox jumps over the lazy dog\n",
                     (i * 7919 + seed * 104729) % 100003, seed);
  }
  s.resize(20000);
  return s;
}

fs::path data_folder(const fs::path& dir, int seed) {
  fs::create_directories(dir);
  write_file(dir / "corpus.txt", text(seed));
  return dir;
}

// A 4-step run that stops after step 2 with a checkpoint in `root`, trained on `data`.
void first_half(const fs::path& data, const fs::path& root) {
  auto r = train(1, {"--steps", "4", "--exit-at-step", "2", "--data", data.string(), "--ckpt-dir",
                     root.string()});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  REQUIRE(latest(root) == "step_000000002");
}

RunResult second_half(const fs::path& data, const fs::path& root,
                      const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"--steps",     "4",          "--data",
                                   data.string(), "--ckpt-dir", root.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return train(1, args);
}

void require_refused(const RunResult& r, const fs::path& root,
                     const std::vector<std::string>& must_mention) {
  INFO(r.output);
  CHECK(r.exit_code == 2);
  for (const auto& s : must_mention) CHECK_THAT(r.output, Catch::Contains(s));
  CHECK_THAT(r.output, Catch::Contains("--allow-data-change"));
  CHECK(latest(root) == "step_000000002");  // nothing trained, nothing moved
  CHECK_FALSE(fs::exists(root / "step_000000004"));
}

}  // namespace

TEST_CASE("resuming on other data or batch settings exits 2 naming the setting",
          "[checkpoint][bad-input][data-change]") {
  TempDir dir;
  const auto data = data_folder(dir / "data", 1);
  const auto root = dir / "ckpt";
  first_half(data, root);

  SECTION("other data, even with the same file name and size") {
    const auto other = data_folder(dir / "other", 2);
    REQUIRE(fs::file_size(other / "corpus.txt") == fs::file_size(data / "corpus.txt"));
    require_refused(second_half(other, root), root, {"--data " + other.string(), data.string()});
    auto allowed = second_half(other, root, {"--allow-data-change"});
    INFO(allowed.output);
    CHECK(allowed.exit_code == 0);
    CHECK_THAT(allowed.output, Catch::Contains("as --allow-data-change allows"));
    CHECK(latest(root) == "step_000000004");
  }
  SECTION("another --micro-batch-size") {
    require_refused(second_half(data, root, {"--micro-batch-size", "3"}), root,
                    {"--micro-batch-size 3 (the checkpoint's: 2)"});
  }
  SECTION("other --microbatches") {
    require_refused(second_half(data, root, {"--microbatches", "2"}), root,
                    {"--microbatches 2 (the checkpoint's: 4)"});
  }
  SECTION("the same data in another folder resumes") {
    const auto copy = dir / "copy";
    fs::copy(data, copy, fs::copy_options::recursive);
    auto r = second_half(copy, root);
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.output, !Catch::Contains("warning"));
  }
  SECTION("a checkpoint that recorded no data identity resumes with a warning") {
    const auto manifest = root / "step_000000002" / "manifest.json";
    auto m = nlohmann::json::parse(read_file(manifest));
    REQUIRE(m["config"].contains("data_identity"));
    m["config"].erase("data_identity");  // as written before the identity was recorded
    write_file(manifest, m.dump(1));
    const auto other = data_folder(dir / "other", 2);
    auto r = second_half(other, root);
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.output, Catch::Contains("does not record --data"));
  }
}

TEST_CASE("a --ckpt-dir that is the --data folder is not read as training data",
          "[checkpoint][data-change]") {
  TempDir dir;
  const auto data = data_folder(dir / "data", 1);
  // Reference: the same data, checkpoints elsewhere, 4 steps straight.
  const auto apart = data_folder(dir / "apart", 1);
  auto straight = train(1, {"--steps", "4", "--data", apart.string(), "--ckpt-dir",
                            (dir / "ckpt").string(), "--metrics", (dir / "a.jsonl").string()});
  INFO(straight.output);
  REQUIRE(straight.exit_code == 0);

  const auto metrics = (dir / "b.jsonl").string();
  auto first = train(1, {"--steps", "4", "--exit-at-step", "2", "--data", data.string(),
                         "--ckpt-dir", data.string(), "--metrics", metrics});
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  REQUIRE(fs::exists(data / "LATEST"));
  auto second = train(1, {"--steps", "4", "--data", data.string(), "--ckpt-dir", data.string(),
                          "--metrics", metrics});
  INFO(second.output);
  REQUIRE(second.exit_code == 0);
  CHECK_THAT(second.output, Catch::Contains(data.string() + ": 1 file,"));
  // The resumed steps sampled the same text as the uninterrupted run.
  CHECK(losses(dir / "b.jsonl") == losses(dir / "a.jsonl"));
}
