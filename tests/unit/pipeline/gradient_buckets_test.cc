// The data-parallel grid and the gradient buckets (pipeline/schedule/topology.h,
// pipeline/parallel/gradient_buckets.h): every rank has one place and back, a stage's replica group
// is its ranks in replica order; every parameter is in exactly one bucket of its own chunk, buckets
// come in the order the chunks finish, ring chunks are cut at parameter boundaries and
// ownership follows the ring's holders.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <set>

#include "model/config.h"
#include "model/stage_model.h"
#include "pipeline/parallel/gradient_buckets.h"
#include "pipeline/parallel/ring_all_reduce.h"
#include "pipeline/schedule/topology.h"

using namespace conveyor;
using namespace conveyor::pipeline;

TEST_CASE("the rank grid maps every rank to one place and back in both layouts", "[pipeline]") {
  for (RankOrder order : {RankOrder::kPipelines, RankOrder::kReplicas}) {
    const Topology t = Topology::make(3, 4, 1, order);
    INFO(rank_order_name(order));
    std::set<int> seen;
    for (int r = 0; r < t.replicas; ++r) {
      for (int s = 0; s < t.stages; ++s) {
        const int rank = t.rank(r, s);
        CHECK(seen.insert(rank).second);
        CHECK(t.place(rank).replica == r);
        CHECK(t.place(rank).stage == s);
      }
    }
    CHECK(seen.size() == 12);
    CHECK(*seen.rbegin() == 11);
    CHECK(t.coordinator_rank() == 0);
    const auto group = t.replica_group(2);
    REQUIRE(group.size() == 3);
    for (int r = 0; r < 3; ++r) CHECK(group[size_t(r)] == t.rank(r, 2));
  }
  // The default: consecutive ranks form one pipeline; `replicas`: one stage's replicas.
  CHECK(Topology::make(2, 3, 1).rank(1, 0) == 3);
  CHECK(Topology::make(2, 3, 1, RankOrder::kReplicas).rank(1, 0) == 1);
  CHECK(Topology::make(2, 2, 1).describe() ==
        "2 replica(s) x 2 stage(s) (layout pipelines): replica 0 = ranks 0,1; replica 1 = ranks "
        "2,3");
}

namespace {

struct Stage {
  std::vector<model::ParamSpec> params;
  std::vector<int> chunk_of;
};

// Stage `stage` of a model cut into `pieces` pieces with `v` chunks per stage.
Stage stage_of(const model::ModelConfig& config, int stages, int v, int stage) {
  const auto all = model::chunk_specs(model::default_partition(config.layers, stages * v));
  std::vector<model::ChunkSpec> chunks;
  for (int c = 0; c < v; ++c) chunks.push_back(all[size_t(c * stages + stage)]);
  Stage s;
  s.params = model::stage_parameters(config, chunks);
  for (const auto& p : s.params) s.chunk_of.push_back(model::chunk_of_parameter(p, chunks));
  return s;
}

model::ModelConfig small_model() {
  model::ModelConfig c;
  c.layers = 6;
  c.dim = 32;
  c.heads = 2;
  c.seq = 16;
  c.vocab = 256;
  return c;
}

}  // namespace

TEST_CASE("every parameter is in one bucket of its chunk, cut at parameter boundaries",
          "[pipeline]") {
  const auto config = small_model();
  for (int stages : {1, 2}) {
    for (int v : {1, 2}) {
      for (int stage = 0; stage < stages; ++stage) {
        for (size_t bucket_elements : {size_t(1), size_t(5000), size_t(1) << 30}) {
          for (int replicas : {1, 2, 3, 5}) {
            INFO(stages << " stages, v " << v << ", stage " << stage << ", bucket "
                        << bucket_elements << ", " << replicas << " replicas");
            const Stage s = stage_of(config, stages, v, stage);
            std::vector<int> order(static_cast<size_t>(v));
            std::iota(order.rbegin(), order.rend(), 0);  // last chunk first
            const BucketPlan plan =
                plan_buckets(s.params, s.chunk_of, order, bucket_elements, replicas);
            std::vector<int> in_bucket(s.params.size(), 0);
            int last_chunk_position = 0;
            for (const auto& b : plan.buckets) {
              // Buckets come chunk by chunk in the order given.
              const int position =
                  int(std::find(order.begin(), order.end(), b.chunk) - order.begin());
              CHECK(position >= last_chunk_position);
              last_chunk_position = position;
              REQUIRE(b.owner_bounds.size() == size_t(replicas) + 1);
              CHECK(b.owner_bounds.front() == 0);
              CHECK(b.owner_bounds.back() == b.elements());
              // The ring sums at the owners' cut, or evenly for a one-parameter bucket.
              if (b.single())
                CHECK(b.ring_bounds == even_chunks(b.elements(), size_t(replicas)));
              else
                CHECK(b.ring_bounds == b.owner_bounds);
              std::set<size_t> starts;  // parameter starts, relative to the bucket
              size_t offset = 0;
              for (int i = b.first_param; i < b.end_param; ++i) {
                ++in_bucket[size_t(i)];
                CHECK(s.chunk_of[size_t(i)] == b.chunk);
                starts.insert(offset);
                offset += s.params[size_t(i)].numel();
              }
              CHECK(offset == b.elements());
              starts.insert(offset);
              for (size_t k = 0; k + 1 < b.owner_bounds.size(); ++k) {
                CHECK(b.owner_bounds[k] <= b.owner_bounds[k + 1]);
                CHECK(starts.contains(b.owner_bounds[k]));
              }
              // The owner of each parameter is the holder of the ring chunk it lies in.
              offset = 0;
              for (int i = b.first_param; i < b.end_param; ++i) {
                size_t k = 0;
                while (b.owner_bounds[k + 1] <= offset) ++k;
                CHECK(plan.owner[size_t(i)] == int(chunk_holder(k, size_t(replicas))));
                offset += s.params[size_t(i)].numel();
              }
              const bool is_wte = s.params[size_t(b.first_param)].name == model::kWteWeight;
              CHECK(b.tied == is_wte);
              if (is_wte) CHECK(b.end_param - b.first_param == 1);
              if (b.end_param - b.first_param > 1) CHECK(b.elements() <= bucket_elements);
            }
            for (size_t i = 0; i < in_bucket.size(); ++i) {
              INFO(s.params[i].name);
              CHECK(in_bucket[i] == 1);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("buckets spread the parameters over the replicas", "[pipeline]") {
  const auto config = small_model();
  const Stage s = stage_of(config, 1, 1, 0);
  size_t total = 0;
  for (const auto& p : s.params) total += p.numel();
  for (int replicas : {2, 3, 4}) {
    INFO(replicas << " replicas");
    const BucketPlan plan = plan_buckets(s.params, s.chunk_of, {0}, total, replicas);
    std::vector<size_t> owned(size_t(replicas), 0);
    for (size_t i = 0; i < s.params.size(); ++i)
      owned[size_t(plan.owner[i])] += s.params[i].numel();
    // No replica is left out, and none owns much more than its share plus the largest
    // parameter (parameters are never split).
    size_t largest = 0;
    for (const auto& p : s.params) largest = std::max(largest, p.numel());
    for (size_t o : owned) {
      CHECK(o > 0);
      CHECK(o <= total / size_t(replicas) + largest);
    }
  }
}

TEST_CASE("the buckets of a chunk are filled from its last parameter", "[pipeline]") {
  const auto config = small_model();
  const Stage s = stage_of(config, 1, 1, 0);
  const BucketPlan plan = plan_buckets(s.params, s.chunk_of, {0}, 5000, 2);
  REQUIRE(plan.buckets.size() > 2);
  // The first bucket ready holds ln_f (the last parameter); the last, wte (the first).
  CHECK(plan.buckets.front().end_param == int(s.params.size()));
  CHECK(plan.buckets.back().first_param == 0);
  CHECK(plan.buckets.back().tied);
  for (size_t b = 1; b < plan.buckets.size(); ++b)
    CHECK(plan.buckets[b].end_param == plan.buckets[b - 1].first_param);
}
