// Summing a buffer over a group of ranks (the replicas of one stage) with a ring:
// reduce-scatter then all-gather, each rank sending and receiving 2 (N-1)/N of the buffer in
// 2 (N-1) steps to and from its ring neighbours only -- bandwidth-optimal, and over the
// point-to-point transport (RDMA or shared memory where present), not the rendezvous
// service. The gradient all-reduce of data parallelism (pipeline/parallel/gradient_sync.h) runs on
// it.
//
// Chunks: the buffer is cut into N chunks given as N+1 offsets (`bounds`, non-decreasing, from
// 0 to the buffer's size; even_chunks() cuts chunk k = [k n / N, (k+1) n / N)). A chunk may be
// empty.
//
// Determinism: chunk k is summed in ring order starting at group[k], left to right:
// ((x_k + x_{k+1}) + ...) + x_{k-1} (indices into the group, mod N), and after the
// reduce-scatter its sum is on group[chunk_holder(k, N)] = group[k-1]. So for a given group and
// chunking the result is the same bits on every run and on every rank.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/clock.h"
#include "kernels/backend.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

// N+1 offsets cutting n elements into N even chunks.
std::vector<size_t> even_chunks(size_t n, size_t parts);
// The group index holding chunk k's sum after the reduce-scatter.
inline size_t chunk_holder(size_t k, size_t members) {
  return (k + members - 1) % members;
}

// Common contract: every member calls with the same group (distinct ranks, in ring order,
// holding this rank), the same bounds, and the same `op` (a sequence number telling concurrent
// or consecutive reductions apart; its low 21 bits go into the tags). `scratch` is resized to
// the largest chunk (a caller that registered it sizes it first, so it never moves).
// `regions` says which memory `data` and `scratch` are in (the transport is told, never
// guesses: transport.h; the overloads that take a backend take it from the backend) and, when
// given, the registered regions holding them: the transport then uses their handles
// (zero-copy without a registration lookup). Blocking; every wait ends at `deadline` (Error
// kRuntime); a dead peer throws Error(kPeerFailed) as the transport does.
struct RingRegions {
  const transport::MemoryRegion* data = nullptr;
  const transport::MemoryRegion* scratch = nullptr;
  transport::MemoryType type = transport::MemoryType::kHost;
};

// Afterwards chunk k of `data` holds the sum on member chunk_holder(k); the other chunks hold
// partial sums.
void ring_reduce_scatter(transport::Transport& transport, std::span<const int> group,
                         std::span<float> data, std::span<const size_t> bounds, uint64_t op,
                         std::vector<float>& scratch, Deadline deadline, RingRegions regions = {});
// The same for `data` in a compute backend's device memory: each received chunk lands in
// `scratch` (that backend's memory, at least the largest chunk) and the backend adds it
// (add_inplace: in + received, the same bits as the host loop's received + in, since IEEE
// addition is commutative); the backend's stream is drained before the next send reads it.
void ring_reduce_scatter(transport::Transport& transport, std::span<const int> group,
                         std::span<float> data, std::span<const size_t> bounds, uint64_t op,
                         kernels::Backend& backend, std::span<float> scratch, Deadline deadline,
                         RingRegions regions = {});
// REQUIRES: member chunk_holder(k) holds the value of chunk k. Afterwards every member holds
// every chunk. Uses tags apart from ring_reduce_scatter's with the same op.
void ring_all_gather(transport::Transport& transport, std::span<const int> group,
                     std::span<float> data, std::span<const size_t> bounds, uint64_t op,
                     Deadline deadline, RingRegions regions = {});
// Both: every member ends with the sum of the whole buffer (even_chunks when bounds is empty).
void ring_all_reduce_sum(transport::Transport& transport, std::span<const int> group,
                         std::span<float> data, uint64_t op, std::vector<float>& scratch,
                         Deadline deadline, std::span<const size_t> bounds = {},
                         RingRegions regions = {});
void ring_all_reduce_sum(transport::Transport& transport, std::span<const int> group,
                         std::span<float> data, uint64_t op, kernels::Backend& backend,
                         std::span<float> scratch, Deadline deadline, RingRegions regions = {});

}  // namespace conveyor::pipeline
