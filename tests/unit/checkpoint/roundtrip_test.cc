// Save a fake 2-stage model, commit, read it back bit-exact by name from any layout.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checksum.h"
#include "common/error.h"
#include "model/param_table.h"
#include "tests/test_util.h"
#include "tests/unit/checkpoint/fake_model.h"

namespace fs = std::filesystem;
using namespace conveyor::checkpoint;
using namespace conveyor::checkpoint::testing;

namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("committed checkpoint reads back bit-exact from every stage layout", "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 7, 2);
  auto step_dir = dir.path() / "step_000000007";
  REQUIRE(fs::is_directory(step_dir));
  REQUIRE(fs::exists(step_dir / "stage_00000.h5"));
  REQUIRE(fs::exists(step_dir / "stage_00001.h5"));
  REQUIRE(fs::exists(step_dir / "manifest.json"));
  // Only shards and the manifest are committed: no sidecars, no partial files.
  REQUIRE(std::distance(fs::directory_iterator(step_dir), fs::directory_iterator()) == 3);

  CheckpointReader reader(step_dir);
  CHECK(reader.manifest().step == 7);
  CHECK(reader.manifest().num_shards == 2);
  CHECK(reader.manifest().fingerprint == "fake-fingerprint");
  CHECK(reader.manifest().config == fake_config());
  CHECK(reader.manifest().layer_shards == std::vector<int>{0, 0, 1, 1});
  CHECK(reader.manifest().params.at(conveyor::model::kWteWeight).shards == std::vector<int>{0, 1});
  CHECK(reader.manifest().params.at(conveyor::model::kLnFWeight).file == "stage_00001.h5");

  // Read as a 1-stage and a 4-stage trainer would: every tensor by its global name.
  for (int layout : {1, 2, 4}) {
    for (int s = 0; s < layout; ++s) {
      for (const auto& want : fake_stage(s, layout, 7)) {
        REQUIRE(reader.shape(want.name) == want.shape);
        std::vector<float> got(want.param.size());
        reader.read(kParams, want.name, got.data(), got.size());
        CHECK(same_bits(got, want.param));
        reader.read(kExpAvg, want.name, got.data(), got.size());
        CHECK(same_bits(got, want.exp_avg));
        reader.read(kExpAvgSq, want.name, got.data(), got.size());
        CHECK(same_bits(got, want.exp_avg_sq));
      }
    }
  }
  auto state = reader.state();
  CHECK(state.at("step") == 7);
  CHECK(state.at("sampler").at("position") == 28);
}

TEST_CASE("reader rejects unknown parameters and wrong sizes with a usage error", "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 1, 2);
  CheckpointReader reader(dir.path() / "step_000000001");
  std::vector<float> buf(1000);
  try {
    reader.read(kParams, "layers.009.fc.weight", buf.data(), 64);
    FAIL("expected an error");
  } catch (const conveyor::Error& e) {
    CHECK(e.kind() == conveyor::ErrorKind::kUsage);
    CHECK_THAT(e.message(), Catch::Contains("layers.009.fc.weight"));
  }
  try {
    reader.read(kParams, "layers.000.fc.weight", buf.data(), 63);
    FAIL("expected an error");
  } catch (const conveyor::Error& e) {
    CHECK(e.kind() == conveyor::ErrorKind::kUsage);
    CHECK_THAT(e.message(), Catch::Contains("64 elements stored, 63 expected"));
  }
}

TEST_CASE("write_shard rejects invalid contents", "[checkpoint]") {
  conveyor::test::TempDir dir;
  auto tmp = begin_step(dir.path(), 1);
  auto tensors = fake_stage(0, 1, 1);
  auto c = contents_of(tensors, 0, 1, 1);
  SECTION("a name with a slash") {
    c.params[0].name = "a/b";
  }
  SECTION("optimizer state out of step with params") {
    c.exp_avg.pop_back();
  }
  SECTION("a duplicate name") {
    c.params[1].name = c.params[0].name;
  }
  SECTION("shard out of range") {
    c.shard = 1;
  }
  try {
    write_shard(tmp, c);
    FAIL("expected an error");
  } catch (const conveyor::Error& e) {
    CHECK(e.kind() == conveyor::ErrorKind::kUsage);
  }
}

TEST_CASE("a checkpoint without optimizer state loads params and says what is missing",
          "[checkpoint]") {
  conveyor::test::TempDir dir;
  auto tmp = begin_step(dir.path(), 3);
  auto tensors = fake_stage(0, 1, 3);
  auto c = contents_of(tensors, 0, 1, 3);
  c.exp_avg.clear();
  c.exp_avg_sq.clear();
  write_shard(tmp, c);
  commit_step(dir.path(), 3, 1, fake_config(), "", 0);
  CheckpointReader reader(dir.path() / "step_000000003");
  std::vector<float> got(tensors[0].param.size());
  reader.read(kParams, tensors[0].name, got.data(), got.size());
  CHECK(same_bits(got, tensors[0].param));
  CHECK_THROWS_WITH(reader.read(kExpAvg, tensors[0].name, got.data(), got.size()),
                    Catch::Contains("/optim/exp_avg/wte.weight"));
  CHECK(verify(dir.path() / "step_000000003").datasets == tensors.size() + 2);
}

// h5py is the outside reader users will reach for; it must see the same numbers.
TEST_CASE("h5py reads a parameter with the written values", "[checkpoint]") {
  std::string python = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  auto probe = conveyor::test::run_program({python, "-c", "import h5py"}, {}, 60);
  if (probe.exit_code != 0) {
    WARN("SKIPPED: python3 with h5py is not available: " << probe.output);
    return;
  }
  conveyor::test::TempDir dir;
  save_step(dir.path(), 5, 2);
  auto shard = (dir.path() / "step_000000005" / "stage_00001.h5").string();
  const std::string script =
      "import sys, json, h5py\n"
      "f = h5py.File(sys.argv[1], 'r')\n"
      "d = f['/params/layers.002.fc.weight']\n"
      "print(d.dtype, list(d.shape), int(d.attrs['xxh3']))\n"
      "print(json.loads(f['/state/json'][()])['step'], int(f['/state/step'][()]))\n"
      "print(' '.join(repr(float(x)) for x in d[()].ravel()))\n";
  auto run = conveyor::test::run_program({python, "-c", script, shard}, {}, 60);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);

  auto want = make_tensor("layers.002.fc.weight", {8, 8}, 5);
  std::istringstream lines(run.output);
  std::string dtype, shape0, shape1;
  uint64_t attr = 0;
  lines >> dtype >> shape0 >> shape1 >> attr;
  CHECK(dtype == "float32");
  CHECK(shape0 + shape1 == "[8,8]");
  CHECK(attr == xxh3(want.param.data(), want.param.size() * sizeof(float)));
  int64_t state_step = 0, step_dataset = 0;
  lines >> state_step >> step_dataset;
  CHECK(state_step == 5);
  CHECK(step_dataset == 5);
  std::vector<float> got;
  std::string word;
  while (lines >> word) got.push_back(static_cast<float>(std::strtod(word.c_str(), nullptr)));
  CHECK(same_bits(got, want.param));
}
