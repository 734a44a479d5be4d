#include "pipeline/parallel/gradient_buckets.h"

#include <algorithm>

#include "common/error.h"
#include "pipeline/parallel/ring_all_reduce.h"

namespace conveyor::pipeline {

namespace {

// Cuts bucket b's parameters into `replicas` runs: parameter i goes to the run in which its
// middle element falls when the bucket is cut evenly by elements. A bucket of one parameter
// cannot be cut: it goes to the replica that owns the fewest elements so far (the lowest on a
// tie), so that single large parameters spread over the replicas.
void cut_for_ring(GradientBucket& b, const std::vector<size_t>& offsets,
                  const std::vector<model::ParamSpec>& params, int replicas,
                  std::vector<int>& owner, std::vector<size_t>& owned) {
  const size_t n = b.elements(), R = size_t(replicas);
  b.owner_bounds.assign(R + 1, n);
  b.owner_bounds[0] = 0;
  size_t run = 0;
  for (int i = b.first_param; i < b.end_param; ++i) {
    const size_t start = offsets[size_t(i)] - b.begin;
    const size_t middle2 = 2 * start + params[size_t(i)].numel();  // twice the middle
    size_t k = n == 0 ? 0 : std::min(R - 1, middle2 * R / (2 * n));
    if (b.single()) {
      const size_t least = size_t(std::min_element(owned.begin(), owned.end()) - owned.begin());
      k = (least + 1) % R;  // the ring chunk whose sum ends on replica `least`
    }
    while (run < k) b.owner_bounds[++run] = start;  // runs before k end here (may be empty)
    const size_t holder = chunk_holder(k, R);
    owner[size_t(i)] = static_cast<int>(holder);
    owned[holder] += params[size_t(i)].numel();
  }
  while (run + 1 < R) b.owner_bounds[++run] = n;
  b.ring_bounds = b.single() ? even_chunks(n, R) : b.owner_bounds;
}

}  // namespace

BucketPlan plan_buckets(const std::vector<model::ParamSpec>& params,
                        const std::vector<int>& chunk_of, const std::vector<int>& chunk_order,
                        size_t bucket_elements, int replicas) {
  CONVEYOR_CHECK(bucket_elements >= 1 && replicas >= 1, "bucket plan: {} elements, {} replicas",
                 bucket_elements, replicas);
  CONVEYOR_CHECK(chunk_of.size() == params.size(), "bucket plan: {} chunk entries for {} params",
                 chunk_of.size(), params.size());
  std::vector<size_t> offsets(params.size() + 1, 0);
  for (size_t i = 0; i < params.size(); ++i) offsets[i + 1] = offsets[i] + params[i].numel();

  BucketPlan plan;
  plan.owner.assign(params.size(), 0);
  std::vector<size_t> owned(size_t(replicas), 0);  // elements owned so far, per replica
  auto close = [&](int first, int end, int chunk, bool tied) {
    GradientBucket b;
    b.first_param = first;
    b.end_param = end;
    b.begin = offsets[size_t(first)];
    b.end = offsets[size_t(end)];
    b.chunk = chunk;
    b.tied = tied;
    cut_for_ring(b, offsets, params, replicas, plan.owner, owned);
    plan.buckets.push_back(std::move(b));
  };
  for (int chunk : chunk_order) {
    // From the chunk's last parameter backwards; the chunk's parameters are contiguous in the
    // store except that wte (index 0) may belong to it while wpe does not.
    int end = -1;  // one past the open bucket's last parameter; -1: none open
    size_t filled = 0;
    for (int i = static_cast<int>(params.size()) - 1; i >= 0; --i) {
      if (chunk_of[size_t(i)] != chunk) {
        if (end >= 0) close(i + 1, end, chunk, false);
        end = -1;
        continue;
      }
      const size_t n = params[size_t(i)].numel();
      if (params[size_t(i)].name == model::kWteWeight) {
        if (end >= 0) close(i + 1, end, chunk, false);
        close(i, i + 1, chunk, true);
        end = -1;
        continue;
      }
      if (end >= 0 && filled + n > bucket_elements) {
        close(i + 1, end, chunk, false);
        end = -1;
      }
      if (end < 0) {
        end = i + 1;
        filled = 0;
      }
      filled += n;
    }
    if (end >= 0) close(0, end, chunk, false);
  }
  size_t covered = 0;
  for (const auto& b : plan.buckets) covered += size_t(b.end_param - b.first_param);
  CONVEYOR_CHECK(covered == params.size(), "bucket plan covers {} of {} parameters", covered,
                 params.size());
  return plan;
}

}  // namespace conveyor::pipeline
