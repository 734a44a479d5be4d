#include "pipeline/ring_all_reduce.h"

#include <algorithm>

#include "common/error.h"
#include "pipeline/message_tag.h"

namespace conveyor::pipeline {

namespace {

// Chunk k of n elements cut in `parts`: [begin, end).
size_t chunk_begin(size_t k, size_t n, size_t parts) {
  return k * n / parts;
}

}  // namespace

void ring_all_reduce_sum(transport::Transport& t, std::span<const int> group, std::span<float> data,
                         uint64_t op, std::vector<float>& scratch, Deadline deadline) {
  const size_t N = group.size();
  const auto me = std::find(group.begin(), group.end(), t.rank());
  CONVEYOR_CHECK(me != group.end(), "ring all-reduce: rank {} is not in its group", t.rank());
  if (N == 1) return;
  const size_t g = static_cast<size_t>(me - group.begin());
  const int right = group[(g + 1) % N], left = group[(g + N - 1) % N];
  const size_t n = data.size();
  size_t largest = 0;
  for (size_t k = 0; k < N; ++k)
    largest = std::max(largest, chunk_begin(k + 1, n, N) - chunk_begin(k, n, N));
  scratch.resize(largest);
  auto chunk = [&](size_t k) {
    const size_t b = chunk_begin(k, n, N);
    return data.subspan(b, chunk_begin(k + 1, n, N) - b);
  };
  // One tag per (reduction, ring step): each step a rank hears from its left neighbour only.
  auto tag = [&](size_t step) {
    return encode(
        MessageTag{MessageKind::kAllReduce, static_cast<int64_t>(op), static_cast<int>(step), 0});
  };
  // Sends `out` right and receives `in` from the left. Chunk sizes are the same on every
  // member, so an empty chunk is skipped by its sender and its receiver alike.
  auto exchange = [&](transport::Tag step_tag, std::span<const float> out, std::span<float> in) {
    std::vector<transport::Request> reqs;
    if (!out.empty()) reqs.push_back(t.isend(right, step_tag, out.data(), out.size_bytes()));
    if (!in.empty()) reqs.push_back(t.irecv(left, step_tag, in.data(), in.size_bytes()));
    t.wait_all(reqs, deadline);
  };
  // Reduce-scatter: at step s, send chunk g-s (complete from g-s up to us) to the right, and
  // receive chunk g-s-1 from the left, which adds our part last.
  for (size_t s = 0; s + 1 < N; ++s) {
    const auto out = chunk((g + N - s) % N), in = chunk((g + 2 * N - s - 1) % N);
    exchange(tag(s), out, {scratch.data(), in.size()});
    for (size_t i = 0; i < in.size(); ++i) in[i] = scratch[i] + in[i];
  }
  // All-gather: we hold the sum of chunk g+1; pass the sums around the ring.
  for (size_t s = 0; s + 1 < N; ++s) {
    const auto out = chunk((g + 1 + N - s) % N), in = chunk((g + N - s) % N);
    exchange(tag(N - 1 + s), out, in);
  }
}

}  // namespace conveyor::pipeline
