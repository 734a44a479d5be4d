// The ring all-reduce (pipeline/parallel/ring_all_reduce.h) over the in-process fake transport:
// exact sums in the documented order for every group size and buffer size, the same bits on every
// member, two groups of one job at once, buffers untouched while the transport may read
// them, and a dead member reported as a peer failure.
#include <catch2/catch.hpp>

#include <cstring>
#include <thread>

#include "common/error.h"
#include "pipeline/parallel/ring_all_reduce.h"
#include "tests/fakes/fake_transport.h"

using namespace conveyor;
using conveyor::test::FakeFabric;
using conveyor::test::FakeTransport;

namespace {

// Member g's input: values whose float sums depend on the order of addition.
std::vector<float> input(int g, size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 1.0f / float(3 + g * 7 + i % 11) + float(g) * 1e-3f;
  return v;
}

// The documented order: chunk k summed from member k around the ring, left to right.
std::vector<float> expected(int members, size_t n) {
  std::vector<float> out(n);
  for (int k = 0; k < members; ++k) {
    const size_t b = size_t(k) * n / size_t(members), e = size_t(k + 1) * n / size_t(members);
    for (size_t i = b; i < e; ++i) {
      float sum = input(k, n)[i];
      for (int j = 1; j < members; ++j) sum = sum + input((k + j) % members, n)[i];
      out[i] = sum;
    }
  }
  return out;
}

// Runs one reduction on every rank of `groups` (each a ring), one thread per rank.
std::vector<std::vector<float>> run(FakeFabric& fabric, const std::vector<std::vector<int>>& groups,
                                    size_t n) {
  std::vector<std::vector<float>> data(size_t(fabric.world_size()));
  std::vector<std::string> errors(data.size());
  std::vector<std::thread> threads;
  for (const auto& group : groups) {
    for (size_t g = 0; g < group.size(); ++g) {
      const int rank = group[g];
      data[size_t(rank)] = input(int(g), n);
      threads.emplace_back([&, rank, group] {
        FakeTransport t(fabric, rank);
        std::vector<float> scratch;
        try {
          pipeline::ring_all_reduce_sum(t, group, data[size_t(rank)], 7, scratch,
                                        Deadline::after_seconds(30));
        } catch (const Error& e) {
          errors[size_t(rank)] = e.message();
        }
      });
    }
  }
  for (auto& th : threads) th.join();
  for (size_t r = 0; r < errors.size(); ++r) {
    INFO("rank " << r);
    CHECK(errors[r].empty());
  }
  return data;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace

TEST_CASE("a ring all-reduce gives every member the sum in the documented order", "[pipeline]") {
  for (int members : {1, 2, 3, 4, 5}) {
    for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(1000)}) {
      INFO(members << " members, " << n << " elements");
      FakeFabric fabric(members);
      fabric.set_hold_sends(true);  // a slow network: buffers must stay as they were sent
      std::vector<int> group(static_cast<size_t>(members));
      for (int r = 0; r < members; ++r) group[size_t(r)] = r;
      const auto out = run(fabric, {group}, n);
      const auto want = expected(members, n);
      for (int r = 0; r < members; ++r) CHECK(same_bits(out[size_t(r)], want));
      CHECK(fabric.violations().empty());
    }
  }
}

TEST_CASE("two rings of one job reduce at the same time without crossing", "[pipeline]") {
  // Six ranks as 3 replicas x 2 stages: stage 0's replicas are ranks 0, 2, 4.
  FakeFabric fabric(6);
  const auto out = run(fabric, {{0, 2, 4}, {1, 3, 5}}, 100);
  const auto want = expected(3, 100);
  for (int r = 0; r < 6; ++r) CHECK(same_bits(out[size_t(r)], want));
}

TEST_CASE("a member that dies ends the all-reduce as a peer failure", "[pipeline]") {
  FakeFabric fabric(3);
  fabric.die_after_sends(2, 1);
  std::vector<std::string> errors(3);
  std::vector<ErrorKind> kinds(3, ErrorKind::kRuntime);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 3; ++rank) {
    threads.emplace_back([&, rank] {
      FakeTransport t(fabric, rank);
      std::vector<float> data = input(rank, 300), scratch;
      try {
        pipeline::ring_all_reduce_sum(t, std::vector<int>{0, 1, 2}, data, 1, scratch,
                                      Deadline::after_seconds(30));
      } catch (const Error& e) {  // checked after the join: Catch2 is not thread-safe
        errors[size_t(rank)] = e.message();
        kinds[size_t(rank)] = e.kind();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int rank = 0; rank < 2; ++rank) {
    CHECK_THAT(errors[size_t(rank)], Catch::Contains("rank 2"));
    CHECK(kinds[size_t(rank)] == ErrorKind::kPeerFailed);
  }
}

TEST_CASE("a reduce-scatter leaves each chunk's sum on its holder and an all-gather spreads them",
          "[pipeline]") {
  constexpr int kMembers = 3;
  constexpr size_t kN = 50;
  const std::vector<size_t> bounds = {0, 0, 20, 50};  // chunk 0 empty, uneven chunks
  FakeFabric fabric(kMembers);
  fabric.set_hold_sends(true);
  std::vector<std::vector<float>> scattered(kMembers), gathered(kMembers);
  std::vector<std::string> errors(kMembers);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < kMembers; ++rank) {
    threads.emplace_back([&, rank] {
      FakeTransport t(fabric, rank);
      std::vector<float> data = input(rank, kN), scratch;
      const std::vector<int> group = {0, 1, 2};
      try {
        pipeline::ring_reduce_scatter(t, group, data, bounds, 3, scratch,
                                      Deadline::after_seconds(30));
        scattered[size_t(rank)] = data;
        pipeline::ring_all_gather(t, group, data, bounds, 3, Deadline::after_seconds(30));
        gathered[size_t(rank)] = data;
      } catch (const Error& e) {
        errors[size_t(rank)] = e.message();
      }
    });
  }
  for (auto& th : threads) th.join();
  // The documented order for these chunks: chunk k summed from member k around the ring.
  std::vector<float> want(kN);
  for (size_t k = 0; k < kMembers; ++k) {
    for (size_t i = bounds[k]; i < bounds[k + 1]; ++i) {
      float sum = input(int(k), kN)[i];
      for (int j = 1; j < kMembers; ++j) sum = sum + input(int((k + j) % kMembers), kN)[i];
      want[i] = sum;
    }
  }
  for (int rank = 0; rank < kMembers; ++rank) {
    INFO("rank " << rank);
    REQUIRE(errors[size_t(rank)].empty());
    CHECK(same_bits(gathered[size_t(rank)], want));
    for (size_t k = 0; k < kMembers; ++k) {
      if (pipeline::chunk_holder(k, kMembers) != size_t(rank)) continue;
      for (size_t i = bounds[k]; i < bounds[k + 1]; ++i)
        CHECK(std::memcmp(&scattered[size_t(rank)][i], &want[i], sizeof(float)) == 0);
    }
  }
  CHECK(fabric.violations().empty());
}
