// A checkpoint whose files are intact but whose manifest disagrees with its shards, its
// directory or the model it saved must fail verify() (so find_latest falls back past it), and
// steps of an abandoned timeline are moved aside.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "checkpoint/file_util.h"
#include "common/error.h"
#include "tests/test_util.h"
#include "tests/unit/checkpoint/fake_model.h"

namespace fs = std::filesystem;
using namespace conveyor::checkpoint;
using namespace conveyor::checkpoint::testing;
using nlohmann::json;

namespace {

json read_json(const fs::path& path) {
  return json::parse(conveyor::test::read_file(path));
}

void write_json(const fs::path& path, const json& j) {
  conveyor::test::write_file(path, j.dump(1));
}

void require_verify_fails(const fs::path& step_dir, const std::vector<std::string>& parts,
                          const ExpectedParams& expected = {}) {
  try {
    verify(step_dir, VerifyLevel::kFull, expected);
  } catch (const conveyor::Error& e) {
    INFO(e.message());
    CHECK(e.kind() == conveyor::ErrorKind::kUsage);
    for (const auto& p : parts) CHECK_THAT(e.message(), Catch::Contains(p));
    return;
  }
  FAIL("verify() accepted an inconsistent checkpoint");
}

// Every tensor of the fake model on `num_stages` stages: what its complete checkpoint holds.
std::map<std::string, std::vector<int64_t>> fake_params() {
  std::map<std::string, std::vector<int64_t>> all;
  for (const auto& t : fake_stage(0, 1, 0)) all.emplace(t.name, t.shape);
  return all;
}

}  // namespace

TEST_CASE("verify refuses a manifest cut to fewer stages than its shards were written for",
          "[checkpoint][consistency]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 4, 2);
  save_step(dir.path(), 6, 2);
  const auto step = dir.path() / "step_000000006";
  auto m = read_json(step / "manifest.json");
  m["num_stages"] = 1;
  m["shards"] = json::array({m["shards"][0]});
  write_json(step / "manifest.json", m);

  require_verify_fails(step, {"step_000000006", "1 stage(s)", "stage_00000.h5", "2 stage(s)"});
  // Resuming falls back past it, as for a checksum failure.
  CHECK(find_latest(dir.path()) == dir.path() / "step_000000004");

  SECTION("also when the shard's entry is edited to match: its header says 2 stages") {
    m["shards"][0]["num_stages"] = 1;
    write_json(step / "manifest.json", m);
    require_verify_fails(step, {"stage_00000.h5", "one of 2 stages", "manifest says 1"});
  }
}

TEST_CASE("verify refuses a step directory holding another step's data",
          "[checkpoint][consistency]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 4, 2);
  fs::copy(dir.path() / "step_000000004", dir.path() / "step_000000006");
  conveyor::test::write_file(dir.path() / "LATEST", "step_000000006\n");

  require_verify_fails(dir.path() / "step_000000006", {"named for step 6", "step 4"});
  // A trailing separator does not hide the name.
  require_verify_fails(dir.path().string() + "/step_000000006/", {"named for step 6"});
  CHECK(find_latest(dir.path()) == dir.path() / "step_000000004");
  // A copy under another name is still a good checkpoint.
  fs::copy(dir.path() / "step_000000004", dir.path() / "saved");
  CHECK(verify(dir.path() / "saved").step == 4);
}

TEST_CASE("verify refuses a manifest whose shards miss a block of the model",
          "[checkpoint][consistency]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 3, 2);
  const auto step = dir.path() / "step_000000003";
  auto m = read_json(step / "manifest.json");
  // Drop block 1 from stage 0's list of parameters (block 3 remains on stage 1).
  json kept = json::array();
  for (const auto& name : m["shards"][0]["params"]) {
    if (name.get<std::string>().rfind("layers.001.", 0) != 0) kept.push_back(name);
  }
  m["shards"][0]["params"] = kept;
  write_json(step / "manifest.json", m);
  require_verify_fails(step, {"block 1 has no parameters"});
}

TEST_CASE("verify checks every parameter of the saved model when the caller knows it",
          "[checkpoint][consistency]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 5, 2);
  const auto step = dir.path() / "step_000000005";
  auto expected = fake_params();
  CHECK(verify(step, VerifyLevel::kFull, [&](const Manifest&) { return expected; }).shards == 2);
  // An empty answer means "cannot tell": only the generic checks run.
  CHECK(verify(step, VerifyLevel::kFull, [](const Manifest&) {
          return std::map<std::string, std::vector<int64_t>>{};
        }).shards == 2);

  SECTION("a missing parameter") {
    expected["extra.weight"] = {4};
    require_verify_fails(step, {"parameter extra.weight of the saved model is in no shard"},
                         [&](const Manifest&) { return expected; });
  }
  SECTION("a parameter with another shape") {
    expected[conveyor::model::kLnFWeight] = {9};
    require_verify_fails(step, {conveyor::model::kLnFWeight, "[8]", "[9]"},
                         [&](const Manifest&) { return expected; });
  }
  SECTION("a parameter the saved model does not have") {
    expected.erase(conveyor::model::kWpeWeight);
    require_verify_fails(step, {"stage_00000.h5", conveyor::model::kWpeWeight, "does not have"},
                         [&](const Manifest&) { return expected; });
  }
}

TEST_CASE("steps newer than the resumed one are moved aside, and LATEST follows",
          "[checkpoint][consistency]") {
  conveyor::test::TempDir dir;
  const auto root = dir.path();
  for (int step : {2, 4, 6}) save_step(root, step, 1);
  // LATEST moved back to step 2 by hand; the run resumes from it.
  conveyor::test::write_file(root / "LATEST", "step_000000002\n");
  CHECK(move_aside_steps_after(root, 2) == std::vector<int64_t>{6, 4});
  CHECK(list_committed_steps(root) == std::vector<int64_t>{2});
  CHECK(fs::exists(root / "abandoned" / "step_000000004" / "manifest.json"));
  CHECK(fs::exists(root / "abandoned" / "step_000000006" / "manifest.json"));
  CHECK(conveyor::test::read_file(root / "LATEST") == "step_000000002\n");

  // The resumed run commits its own step 4. A later fallback (LATEST damaged) finds that one,
  // never the abandoned timeline's.
  save_step(root, 4, 1);
  conveyor::test::write_file(root / "LATEST", "garbage");
  CHECK(find_latest(root) == root / "step_000000004");

  SECTION("a second abandoned step 4 does not overwrite the first") {
    CHECK(move_aside_steps_after(root, 2) == std::vector<int64_t>{4});
    CHECK(fs::exists(root / "abandoned" / "step_000000004.1" / "manifest.json"));
  }
  SECTION("LATEST naming a moved step is pointed at the resumed step") {
    conveyor::test::write_file(root / "LATEST", "step_000000004\n");
    CHECK(move_aside_steps_after(root, 2) == std::vector<int64_t>{4});
    CHECK(conveyor::test::read_file(root / "LATEST") == "step_000000002\n");
  }
  SECTION("a fresh start moves every step aside and removes LATEST") {
    conveyor::test::write_file(root / "LATEST", "step_000000004\n");
    CHECK(move_aside_steps_after(root, 0) == std::vector<int64_t>{4, 2});
    CHECK(list_committed_steps(root).empty());
    CHECK_FALSE(fs::exists(root / "LATEST"));
  }
}

TEST_CASE("printable escapes control and non-ASCII bytes and cuts long text",
          "[checkpoint][consistency]") {
  CHECK(printable("step_000000004") == "step_000000004");
  CHECK(printable(std::string("a\x1b[31m\0\xff\\", 9)) == "a\\x1b[31m\\x00\\xff\\x5c");
  CHECK(printable(std::string(100, 'x'), 10) == "xxxxxxxxxx...");
}
