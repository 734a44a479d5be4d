// Summing a buffer over a group of ranks (the replicas of one stage) with a ring:
// reduce-scatter then all-gather, each rank sending and receiving 2 (N-1)/N of the buffer in
// 2 (N-1) steps to and from its ring neighbours only -- bandwidth-optimal, and over the
// point-to-point transport (RDMA or shared memory where present), not the rendezvous
// service. The groundwork of data parallelism (issue: data-parallel replicas).
//
// Determinism: the buffer is cut into N chunks, chunk k = [k n / N, (k+1) n / N). Chunk k is
// summed in ring order starting at group[k], left to right: ((x_k + x_{k+1}) + ...) + x_{k-1}
// (indices into the group, mod N). So for a given group the result is the same bits on every
// run and on every rank; a different group size sums in another order.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/clock.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

// Sums `data` element-wise over the ranks of `group` (distinct ranks, in ring order, holding
// this rank), in place; every member calls it with the same group, size and `op` (a sequence
// number telling concurrent or consecutive reductions apart; its low 21 bits go into the
// tags). `scratch` is resized to the largest chunk. Blocking; every wait ends at `deadline`
// (Error kRuntime); a dead peer throws Error(kPeerFailed) as the transport does.
void ring_all_reduce_sum(transport::Transport& transport, std::span<const int> group,
                         std::span<float> data, uint64_t op, std::vector<float>& scratch,
                         Deadline deadline);

}  // namespace conveyor::pipeline
