// The sampler: a pure function of (seed, step, micro-batch, row) reading in-range windows.
#include <catch2/catch.hpp>

#include <cstdint>
#include <set>
#include <vector>

#include "common/error.h"
#include "data/dataset.h"
#include "data/sampler.h"

using conveyor::Error;
using conveyor::ErrorKind;
using conveyor::data::Dataset;
using conveyor::data::eval_window;
using conveyor::data::num_eval_windows;
using conveyor::data::sample_batch;
using conveyor::data::sample_offset;

namespace {

// Token i is i % vocab (vocab 65536 so every position in a 1000-token corpus is unique):
// a window's content then tells where it starts.
Dataset counting_data(size_t n) {
  std::vector<uint16_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = static_cast<uint16_t>(i);
  return Dataset::from_tokens(t, 65536);
}

struct Batch {
  std::vector<int32_t> inputs, targets;
  bool operator==(const Batch&) const = default;
};

Batch sample(const Dataset& d, uint64_t seed, int64_t step, int mb, int batch, int seq) {
  Batch b{std::vector<int32_t>(static_cast<size_t>(batch * seq), -1),
          std::vector<int32_t>(static_cast<size_t>(batch * seq), -1)};
  sample_batch(d, seed, step, mb, batch, seq, b.inputs.data(), b.targets.data());
  return b;
}

}  // namespace

TEST_CASE("the sampler is a pure function of its arguments", "[data]") {
  const Dataset d = counting_data(1000);
  const Batch a = sample(d, 1234, 7, 2, 4, 16);
  CHECK(a == sample(d, 1234, 7, 2, 4, 16));
  CHECK_FALSE(a == sample(d, 1234, 8, 2, 4, 16));  // another step
  CHECK_FALSE(a == sample(d, 1234, 7, 3, 4, 16));  // another micro-batch
  CHECK_FALSE(a == sample(d, 1235, 7, 2, 4, 16));  // another seed

  // Rows within a micro-batch differ too (a fixed hash of the row index, not a repeat).
  std::set<size_t> offsets;
  for (int r = 0; r < 4; ++r) offsets.insert(sample_offset(d, 1234, 7, 2, r, 16));
  CHECK(offsets.size() == 4);

  // Row r does not depend on how many rows are asked for.
  const Batch two = sample(d, 1234, 7, 2, 2, 16);
  CHECK(std::vector<int32_t>(a.inputs.begin(), a.inputs.begin() + 32) == two.inputs);
}

TEST_CASE("each row is the window at its offset, targets are inputs shifted by one", "[data]") {
  const Dataset d = counting_data(1000);
  const int batch = 3, seq = 8;
  const Batch b = sample(d, 99, 5, 1, batch, seq);
  for (int r = 0; r < batch; ++r) {
    const size_t off = sample_offset(d, 99, 5, 1, r, seq);
    for (int t = 0; t < seq; ++t) {
      const size_t k = static_cast<size_t>(r * seq + t);
      CHECK(b.inputs[k] == d[off + static_cast<size_t>(t)]);
      CHECK(b.targets[k] == d[off + static_cast<size_t>(t) + 1]);
      if (t + 1 < seq) CHECK(b.targets[k] == b.inputs[k + 1]);
    }
  }
}

TEST_CASE("offsets stay in range and reach every start", "[data]") {
  // 10 tokens, seq 4: starts 0..5 are valid (the last target is token 9).
  const Dataset d = counting_data(10);
  const int seq = 4;
  std::set<size_t> seen;
  for (int64_t step = 0; step < 200; ++step) {
    const Batch b = sample(d, 3, step, 0, 2, seq);
    for (int32_t v : b.targets) CHECK(v < 10);
    for (int r = 0; r < 2; ++r) {
      const size_t off = sample_offset(d, 3, step, 0, r, seq);
      CHECK(off <= 5);
      seen.insert(off);
    }
  }
  CHECK(seen.size() == 6);

  // Exactly seq + 1 tokens: one possible window.
  const Dataset tight = counting_data(5);
  const Batch b = sample(tight, 1, 0, 0, 1, 4);
  CHECK(b.inputs == std::vector<int32_t>{0, 1, 2, 3});
  CHECK(b.targets == std::vector<int32_t>{1, 2, 3, 4});
}

TEST_CASE("a sequence longer than the data is a usage error", "[data]") {
  const Dataset d = counting_data(10);
  std::vector<int32_t> in(10), tg(10);
  try {
    sample_batch(d, 0, 0, 0, 1, 10, in.data(), tg.data());
    FAIL("sample_batch did not throw");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUsage);
    CHECK_THAT(e.message(), Catch::Contains("--seq 10") && Catch::Contains("10 tokens"));
  }
  CHECK_THROWS_AS(sample_batch(d, 0, 0, 0, 0, 4, in.data(), tg.data()), Error);
  CHECK_THROWS_AS(sample_batch(d, 0, 0, 0, 1, 0, in.data(), tg.data()), Error);
}

TEST_CASE("eval windows tile the data in order", "[data]") {
  const Dataset d = counting_data(17);
  const int seq = 4;
  REQUIRE(num_eval_windows(d, seq) == 4);  // (17 - 1) / 4
  std::vector<int32_t> in(seq), tg(seq);
  for (size_t w = 0; w < 4; ++w) {
    eval_window(d, w, seq, in.data(), tg.data());
    for (int t = 0; t < seq; ++t) {
      CHECK(in[static_cast<size_t>(t)] == static_cast<int32_t>(w * seq + static_cast<size_t>(t)));
      CHECK(tg[static_cast<size_t>(t)] == in[static_cast<size_t>(t)] + 1);
    }
  }
  CHECK_THROWS_AS(eval_window(d, 4, seq, in.data(), tg.data()), Error);
  CHECK(num_eval_windows(d, 16) == 1);
  CHECK(num_eval_windows(d, 17) == 0);
}
