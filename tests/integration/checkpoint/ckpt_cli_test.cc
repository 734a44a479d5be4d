// `conveyor ckpt verify|inspect|settings` through the real binary: output and exit codes.
#include <hdf5.h>
#include <catch2/catch.hpp>

#include <fstream>

#include "checkpoint/checkpoint.h"
#include "tests/test_util.h"
#include "tests/unit/checkpoint/fake_model.h"

namespace fs = std::filesystem;
using namespace conveyor::checkpoint::testing;
using conveyor::test::run_conveyor;

TEST_CASE("conveyor ckpt verify accepts a good checkpoint and names a bad shard",
          "[checkpoint][cli]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 3, 2);
  auto step_dir = dir.path() / "step_000000003";

  // Root (via LATEST) and step directory both work.
  for (const auto& target : {dir.str(), step_dir.string()}) {
    auto ok = run_conveyor({"ckpt", "verify", target});
    INFO(ok.output);
    CHECK(ok.exit_code == 0);
    CHECK_THAT(ok.output, Catch::Contains("ok: step 3, 2 shards, 40 datasets verified"));
  }

  // Flip one byte inside /params/layers.002.fc.bias of stage 1.
  auto shard = step_dir / "stage_00001.h5";
  const std::string dataset = "/params/layers.002.fc.bias";
  hid_t f = H5Fopen(shard.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  REQUIRE(d >= 0);
  haddr_t offset = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  {
    std::fstream io(shard, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(static_cast<std::streamoff>(offset + 2));
    io.put('\x7f');
  }
  auto bad = run_conveyor({"ckpt", "verify", dir.str()});
  INFO(bad.output);
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("stage_00001.h5") && Catch::Contains(dataset));

  // --quick reads no data, so it still passes.
  CHECK(run_conveyor({"ckpt", "verify", "--quick", dir.str()}).exit_code == 0);
}

TEST_CASE("conveyor ckpt verify exits 2 for a directory that is not a checkpoint",
          "[checkpoint][cli]") {
  conveyor::test::TempDir dir;
  auto r = run_conveyor({"ckpt", "verify", dir.str()});
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("neither a checkpoint step"));
  CHECK(run_conveyor({"ckpt", "verify", (dir.path() / "nope").string()}).exit_code == 2);
}

TEST_CASE("conveyor ckpt inspect prints step, config, stages and every parameter",
          "[checkpoint][cli]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 12, 2);
  auto r = run_conveyor({"ckpt", "inspect", dir.str()});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("step: 12"));
  CHECK_THAT(r.output, Catch::Contains("stages: 2"));
  CHECK_THAT(r.output, Catch::Contains("\"vocab\": 16"));
  for (int s = 0; s < 2; ++s) {
    for (const auto& t : fake_stage(s, 2, 12)) {
      CHECK_THAT(r.output, Catch::Contains(t.name));
    }
  }
  CHECK_THAT(r.output, Catch::Matches("(.|\\n)*stage_00001\\.h5  layers\\.003\\.fc\\.weight +"
                                      "\\[8, 8\\] +256(.|\\n)*"));
}

TEST_CASE("conveyor ckpt settings exits 2 for a checkpoint that saved none", "[checkpoint][cli]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 4, 1);
  auto r = run_conveyor({"ckpt", "settings", dir.str()});
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("holds no settings"));
  CHECK_THAT(run_conveyor({"ckpt", "inspect", dir.str()}).output,
             Catch::Contains("settings: (none"));
}
