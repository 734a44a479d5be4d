// Damage made through the files themselves must be detected and name the culprit.
#include <hdf5.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "common/error.h"
#include "tests/test_util.h"
#include "tests/unit/checkpoint/fake_model.h"

namespace fs = std::filesystem;
using namespace conveyor::checkpoint;
using namespace conveyor::checkpoint::testing;

namespace {

// File offset of a contiguous dataset's first byte, as HDF5 reports it.
uint64_t dataset_offset(const fs::path& file, const std::string& dataset) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  REQUIRE(d >= 0);
  haddr_t offset = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  REQUIRE(offset != HADDR_UNDEF);
  return offset;
}

void flip_byte(const fs::path& file, uint64_t offset) {
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(io);
  io.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  io.read(&c, 1);
  c = static_cast<char>(c ^ 0x10);
  io.seekp(static_cast<std::streamoff>(offset));
  io.write(&c, 1);
  REQUIRE(io);
}

// verify() must fail with a usage error whose message contains every one of `parts`.
void require_verify_fails(const fs::path& step_dir, const std::vector<std::string>& parts) {
  try {
    verify(step_dir);
  } catch (const conveyor::Error& e) {
    INFO(e.message());
    CHECK(e.kind() == conveyor::ErrorKind::kUsage);
    for (const auto& p : parts) CHECK_THAT(e.message(), Catch::Contains(p));
    return;
  }
  FAIL("verify() accepted a damaged checkpoint");
}

}  // namespace

TEST_CASE("an intact checkpoint verifies", "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 3, 2);
  auto result = verify(dir.path() / "step_000000003");
  CHECK(result.step == 3);
  CHECK(result.shards == 2);
  // stage 0: wte, wpe, 2 layers x 2 = 6 tensors; stage 1: 4 + ln_f + wte = 6; x3 groups + 2 state.
  CHECK(result.datasets == 2 * (6 * 3 + 2));
}

TEST_CASE("a flipped byte in a dataset is caught, naming shard and dataset", "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 3, 2);
  auto step_dir = dir.path() / "step_000000003";
  auto shard = step_dir / "stage_00001.h5";
  const std::string dataset = "/optim/exp_avg/layers.003.fc.weight";
  flip_byte(shard, dataset_offset(shard, dataset) + 17);

  require_verify_fails(step_dir, {"stage_00001.h5", dataset, "checksum"});
  // The quick check reads no data, so it cannot see this.
  CHECK_NOTHROW(verify(step_dir, VerifyLevel::kStructure));
  // Loading the damaged tensor fails the same way; undamaged ones still load.
  CheckpointReader reader(step_dir);
  std::vector<float> buf(64);
  CHECK_THROWS_WITH(reader.read(kExpAvg, "layers.003.fc.weight", buf.data(), buf.size()),
                    Catch::Contains("stage_00001.h5") && Catch::Contains(dataset));
  CHECK_NOTHROW(reader.read(kParams, "layers.003.fc.weight", buf.data(), buf.size()));
}

TEST_CASE("a truncated shard is caught", "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 3, 2);
  auto step_dir = dir.path() / "step_000000003";
  auto shard = step_dir / "stage_00000.h5";
  fs::resize_file(shard, fs::file_size(shard) / 2);
  require_verify_fails(step_dir, {"stage_00000.h5", "truncated"});
  CHECK_THROWS_AS(verify(step_dir, VerifyLevel::kStructure), conveyor::Error);
}

TEST_CASE("a missing shard is caught", "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 3, 2);
  auto step_dir = dir.path() / "step_000000003";
  fs::remove(step_dir / "stage_00001.h5");
  require_verify_fails(step_dir, {"stage_00001.h5", "missing"});
}

TEST_CASE("a non-HDF5 file in place of a shard is caught", "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 3, 2);
  auto step_dir = dir.path() / "step_000000003";
  conveyor::test::write_file(step_dir / "stage_00000.h5", "this is not a checkpoint\n");
  require_verify_fails(step_dir, {"stage_00000.h5", "is not an HDF5 file"});
  CheckpointReader reader(step_dir);
  CHECK_THROWS_WITH(reader.state(), Catch::Contains("is not an HDF5 file"));
}

TEST_CASE("a manifest that disagrees with the shards is caught", "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 3, 2);
  auto step_dir = dir.path() / "step_000000003";
  auto manifest_path = step_dir / "manifest.json";
  auto manifest = nlohmann::json::parse(conveyor::test::read_file(manifest_path));
  const std::string dataset = "/params/wpe.weight";

  SECTION("an edited checksum") {
    auto& sum = manifest["shards"][0]["datasets"][dataset]["xxh3"];
    std::string text = sum.get<std::string>();
    text[0] = text[0] == '0' ? '1' : '0';
    sum = text;
    conveyor::test::write_file(manifest_path, manifest.dump(1));
    require_verify_fails(step_dir, {"stage_00000.h5", dataset, "checksum"});
  }
  SECTION("an edited size") {
    manifest["shards"][1]["bytes"] = manifest["shards"][1]["bytes"].get<uint64_t>() + 1;
    conveyor::test::write_file(manifest_path, manifest.dump(1));
    require_verify_fails(step_dir, {"stage_00001.h5", "bytes"});
  }
  SECTION("an edited shape") {
    manifest["shards"][0]["datasets"][dataset]["shape"] = {8, 4};
    conveyor::test::write_file(manifest_path, manifest.dump(1));
    require_verify_fails(step_dir, {"stage_00000.h5", dataset, "shape"});
  }
  SECTION("garbage") {
    conveyor::test::write_file(manifest_path, "{ not json");
    require_verify_fails(step_dir, {"manifest.json", "not valid JSON"});
  }
  SECTION("no manifest") {
    fs::remove(manifest_path);
    require_verify_fails(step_dir, {"manifest.json"});
  }
}

TEST_CASE("find_latest falls back to the previous step when the newest is damaged",
          "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 1, 2);
  save_step(dir.path(), 2, 2);
  auto newest = dir.path() / "step_000000002";
  auto previous = dir.path() / "step_000000001";

  SECTION("flipped byte: found by a full verification") {
    auto shard = newest / "stage_00000.h5";
    flip_byte(shard, dataset_offset(shard, "/params/wte.weight"));
    CHECK(find_latest(dir.path()) == previous);
    CHECK(find_latest(dir.path(), VerifyLevel::kStructure) == newest);
  }
  SECTION("truncated shard: found by either level") {
    auto shard = newest / "stage_00001.h5";
    fs::resize_file(shard, 100);
    CHECK(find_latest(dir.path()) == previous);
    CHECK(find_latest(dir.path(), VerifyLevel::kStructure) == previous);
  }
  SECTION("garbled LATEST: scans the step directories") {
    conveyor::test::write_file(dir.path() / "LATEST", "nonsense");
    CHECK(find_latest(dir.path()) == newest);
  }
  SECTION("every step damaged: none") {
    fs::remove(newest / "manifest.json");
    fs::remove(previous / "stage_00000.h5");
    CHECK_FALSE(find_latest(dir.path()).has_value());
  }
}
