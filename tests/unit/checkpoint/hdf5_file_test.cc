// The HDF5 layer's sliced hashing (used by verify for big tensors) equals a whole-buffer hash.
#include <catch2/catch.hpp>

// hdf5_file.h is internal to checkpoint/; this test exercises it directly.
#define CONVEYOR_CHECKPOINT_INTERNAL 1

#include "checkpoint/checkpoint.h"
#include "checkpoint/checksum.h"
#include "checkpoint/hdf5_file.h"
#include "model/param_table.h"
#include "tests/test_util.h"
#include "tests/unit/checkpoint/fake_model.h"

using namespace conveyor::checkpoint;
using namespace conveyor::checkpoint::testing;

TEST_CASE("hash_dataset gives the same checksum whatever the slice size", "[checkpoint]") {
  conveyor::test::TempDir dir;
  save_step(dir.path(), 2, 1);
  auto shard = dir.path() / "step_000000002" / "stage_00000.h5";
  auto want = make_tensor(conveyor::model::kWteWeight, {16, 8}, 2);  // 16 rows of 32 bytes
  const uint64_t expected = xxh3(want.param.data(), want.param.size() * sizeof(float));

  h5::Handle file = h5::open_file(shard);
  auto view = h5::open_dataset(file.get(), "/params/wte.weight", shard);
  REQUIRE(view);
  CHECK(view->shape == want.shape);
  // Whole, 3 rows per slice (last slice partial), and less than one row per slice.
  for (size_t slice : {size_t{1} << 20, size_t{100}, size_t{5}}) {
    CHECK(h5::hash_dataset(*view, "/params/wte.weight", shard, slice) == expected);
  }
  CHECK_FALSE(h5::open_dataset(file.get(), "/params/nope", shard).has_value());
  CHECK_FALSE(h5::open_dataset(file.get(), "/nogroup/nope", shard).has_value());
}
