#include "pipeline/parallel/ring_all_reduce.h"

#include <algorithm>

#include "common/error.h"
#include "pipeline/runtime/message_tag.h"

namespace conveyor::pipeline {

namespace {

// This rank's place in a ring and the pieces every step needs.
struct Ring {
  transport::Transport& t;
  std::span<const int> group;
  std::span<float> data;
  std::span<const size_t> bounds;
  uint64_t op;
  Deadline deadline;
  RingRegions regions;
  size_t N = 0, g = 0;
  int right = -1, left = -1;

  Ring(transport::Transport& transport, std::span<const int> grp, std::span<float> d,
       std::span<const size_t> b, uint64_t o, Deadline dl, RingRegions r)
      : t(transport),
        group(grp),
        data(d),
        bounds(b),
        op(o),
        deadline(dl),
        regions(r),
        N(grp.size()) {
    const auto me = std::find(group.begin(), group.end(), t.rank());
    CONVEYOR_CHECK(me != group.end(), "ring all-reduce: rank {} is not in its group", t.rank());
    CONVEYOR_CHECK(bounds.size() == N + 1 && bounds.front() == 0 && bounds.back() == data.size(),
                   "ring all-reduce: {} chunk bounds for {} members and {} elements", bounds.size(),
                   N, data.size());
    for (size_t k = 0; k < N; ++k)
      CONVEYOR_CHECK(bounds[k] <= bounds[k + 1], "ring all-reduce: chunk {} ends before it begins",
                     k);
    g = static_cast<size_t>(me - group.begin());
    right = group[(g + 1) % N];
    left = group[(g + N - 1) % N];
  }

  std::span<float> chunk(size_t k) const {
    return data.subspan(bounds[k], bounds[k + 1] - bounds[k]);
  }
  size_t largest() const {
    size_t most = 0;
    for (size_t k = 0; k < N; ++k) most = std::max(most, bounds[k + 1] - bounds[k]);
    return most;
  }
  // One tag per (reduction, ring step): each step a rank hears from its left neighbour only.
  transport::Tag tag(size_t step) const {
    return encode(
        MessageTag{MessageKind::kAllReduce, static_cast<int64_t>(op), static_cast<int>(step), 0});
  }
  // Sends `out` (in data) right and receives `in` (in data, or in scratch when
  // `into_scratch`) from the left. Chunk sizes are the same on every member, so an empty chunk
  // is skipped by its sender and its receiver alike.
  void exchange(size_t step, std::span<const float> out, std::span<float> in,
                bool into_scratch) const {
    std::vector<transport::Request> reqs;
    if (!out.empty())
      reqs.push_back(
          t.isend(right, tag(step), out.data(), out.size_bytes(), regions.data, regions.type));
    if (!in.empty())
      reqs.push_back(t.irecv(left, tag(step), in.data(), in.size_bytes(),
                             into_scratch ? regions.scratch : regions.data, regions.type));
    t.wait_all(reqs, deadline);
  }
};

}  // namespace

std::vector<size_t> even_chunks(size_t n, size_t parts) {
  std::vector<size_t> bounds(parts + 1);
  for (size_t k = 0; k <= parts; ++k) bounds[k] = k * n / parts;
  return bounds;
}

void ring_reduce_scatter(transport::Transport& t, std::span<const int> group, std::span<float> data,
                         std::span<const size_t> bounds, uint64_t op, std::vector<float>& scratch,
                         Deadline deadline, RingRegions regions) {
  CONVEYOR_CHECK(regions.type == transport::MemoryType::kHost,
                 "ring all-reduce: the host loop given {} memory",
                 kernels::memory_type_name(regions.type));
  const Ring ring(t, group, data, bounds, op, deadline, regions);
  const size_t N = ring.N, g = ring.g;
  if (N == 1) return;
  if (scratch.size() < ring.largest()) scratch.resize(ring.largest());
  // At step s, send chunk g-s (complete from g-s up to us) to the right, and receive chunk
  // g-s-1 from the left, which adds our part last.
  for (size_t s = 0; s + 1 < N; ++s) {
    const auto out = ring.chunk((g + N - s) % N), in = ring.chunk((g + 2 * N - s - 1) % N);
    ring.exchange(s, out, {scratch.data(), in.size()}, true);
    for (size_t i = 0; i < in.size(); ++i) in[i] = scratch[i] + in[i];
  }
}

void ring_reduce_scatter(transport::Transport& t, std::span<const int> group, std::span<float> data,
                         std::span<const size_t> bounds, uint64_t op, kernels::Backend& backend,
                         std::span<float> scratch, Deadline deadline, RingRegions regions) {
  regions.type = backend.memory_type();  // data and scratch are the backend's
  const Ring ring(t, group, data, bounds, op, deadline, regions);
  const size_t N = ring.N, g = ring.g;
  if (N == 1) return;
  CONVEYOR_CHECK(scratch.size() >= ring.largest(),
                 "ring all-reduce: scratch of {} floats for chunks of up to {}", scratch.size(),
                 ring.largest());
  for (size_t s = 0; s + 1 < N; ++s) {  // the steps of the host version above
    const auto out = ring.chunk((g + N - s) % N), in = ring.chunk((g + 2 * N - s - 1) % N);
    ring.exchange(s, out, scratch.first(in.size()), true);
    if (in.empty()) continue;
    backend.add_inplace(in.data(), scratch.data(), in.size());
    backend.synchronize();  // the next step sends this chunk, or receives over scratch
  }
}

void ring_all_gather(transport::Transport& t, std::span<const int> group, std::span<float> data,
                     std::span<const size_t> bounds, uint64_t op, Deadline deadline,
                     RingRegions regions) {
  const Ring ring(t, group, data, bounds, op, deadline, regions);
  const size_t N = ring.N, g = ring.g;
  // We hold chunk g+1; pass the chunks around the ring.
  for (size_t s = 0; s + 1 < N; ++s) {
    const auto out = ring.chunk((g + 1 + N - s) % N), in = ring.chunk((g + N - s) % N);
    ring.exchange(N - 1 + s, out, in, false);
  }
}

void ring_all_reduce_sum(transport::Transport& t, std::span<const int> group, std::span<float> data,
                         uint64_t op, std::vector<float>& scratch, Deadline deadline,
                         std::span<const size_t> bounds, RingRegions regions) {
  std::vector<size_t> even;
  if (bounds.empty()) {
    even = even_chunks(data.size(), group.size());
    bounds = even;
  }
  ring_reduce_scatter(t, group, data, bounds, op, scratch, deadline, regions);
  ring_all_gather(t, group, data, bounds, op, deadline, regions);
}

void ring_all_reduce_sum(transport::Transport& t, std::span<const int> group, std::span<float> data,
                         uint64_t op, kernels::Backend& backend, std::span<float> scratch,
                         Deadline deadline, RingRegions regions) {
  regions.type = backend.memory_type();  // data and scratch are the backend's
  const auto bounds = even_chunks(data.size(), group.size());
  ring_reduce_scatter(t, group, data, bounds, op, backend, scratch, deadline, regions);
  ring_all_gather(t, group, data, bounds, op, deadline, regions);
}

}  // namespace conveyor::pipeline
