// Topology: the one mapping between the job's ranks and its work, (replica, stage, virtual
// chunk) <-> rank. Everything that needs a peer asks it: the executor (through the
// schedule's program), the tied-embedding exchange, the gradient all-reduce among replicas,
// generation, the trace gather and checkpoint commit. Nothing else computes a peer.
//
// Layout
//   - Virtual stages: with v chunks per stage, virtual stage vs holds the vs-th slice of the
//     layers. Placement::kRoundRobin (Megatron's interleaved layout): vs = chunk * stages +
//     stage. Placement::kV (the V-shaped schedules zb-v and dualpipe-v; PyTorch's
//     generate_stage_to_rank_mapping(style="v")), exactly 2 chunks: chunk 0 of stage s is
//     virtual stage s, chunk 1 is 2 * stages - 1 - s, so the first and the last virtual stage
//     share stage 0 (the tied embedding's gradient is summed there) and virtual stages p-1
//     and p share the last stage (that activation never crosses the wire). With v == 1,
//     virtual stage == stage and chunk == 0.
//   - Ranks form a grid of `replicas` pipelines of `stages` stages (docs/PARALLELISM.md).
//     RankOrder::kPipelines (the default, `--layout pipelines`): consecutive ranks form one
//     pipeline, rank = replica * stages + stage. RankOrder::kReplicas (`--layout replicas`):
//     consecutive ranks are the replicas of one stage, rank = stage * replicas + replica
//     (keeps the gradient all-reduce, the heavier traffic, among neighbouring ranks).
//   - The embedding is on stage_of(0) == 0; the head on stage_of(last virtual stage).
//   - Rank 0 (replica 0, stage 0) coordinates: it picks the checkpoint to resume, commits
//     saves and writes the trace. Replica 0's head stage reports metrics.
//
// A pure value type; safe from any thread.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"

namespace conveyor::pipeline {

enum class RankOrder { kPipelines, kReplicas };
enum class Placement { kRoundRobin, kV };

// "pipelines" | "replicas" (the --layout values). Throws Error(kUsage) for anything else.
RankOrder parse_rank_order(const std::string& text);
const char* rank_order_name(RankOrder order);

struct Topology {
  int replicas = 1;
  int stages = 1;
  int virtual_stages = 1;  // chunks per stage
  RankOrder order = RankOrder::kPipelines;
  Placement placement = Placement::kRoundRobin;

  // Throws Error(kUsage) for a count below 1, or V placement with other than 2 chunks.
  static Topology make(int replicas, int stages, int virtual_stages,
                       RankOrder order = RankOrder::kPipelines,
                       Placement placement = Placement::kRoundRobin) {
    CONVEYOR_REQUIRE(replicas >= 1, "--replicas is {}; it must be at least 1", replicas);
    CONVEYOR_REQUIRE(stages >= 1, "--stages is {}; it must be at least 1", stages);
    CONVEYOR_REQUIRE(virtual_stages >= 1, "--virtual-stages is {}; it must be at least 1",
                     virtual_stages);
    CONVEYOR_REQUIRE(placement != Placement::kV || virtual_stages == 2,
                     "the V placement holds exactly 2 virtual stages per stage, not {}",
                     virtual_stages);
    return Topology{replicas, stages, virtual_stages, order, placement};
  }

  int world_size() const { return replicas * stages; }
  int num_virtual_stages() const { return stages * virtual_stages; }
  int last_virtual_stage() const { return num_virtual_stages() - 1; }

  int virtual_stage(int stage, int chunk) const {
    if (placement == Placement::kV) return chunk == 0 ? stage : 2 * stages - 1 - stage;
    return chunk * stages + stage;
  }
  int stage_of(int vs) const {
    if (placement == Placement::kV) return vs < stages ? vs : 2 * stages - 1 - vs;
    return vs % stages;
  }
  int chunk_of(int vs) const {
    if (placement == Placement::kV) return vs < stages ? 0 : 1;
    return vs / stages;
  }

  struct Place {
    int replica;
    int stage;
  };
  int rank(int replica, int stage) const {
    return order == RankOrder::kPipelines ? replica * stages + stage : stage * replicas + replica;
  }
  int rank_of_virtual_stage(int replica, int vs) const { return rank(replica, stage_of(vs)); }
  Place place(int rank) const {
    if (order == RankOrder::kPipelines) return {rank / stages, rank % stages};
    return {rank % replicas, rank / replicas};
  }
  // The ranks holding `stage`, replica 0 first: the group whose gradients are summed.
  std::vector<int> replica_group(int stage) const {
    std::vector<int> group;
    for (int r = 0; r < replicas; ++r) group.push_back(rank(r, stage));
    return group;
  }

  int embedding_stage() const { return stage_of(0); }
  int head_stage() const { return stage_of(last_virtual_stage()); }
  bool holds_embedding(int stage) const { return stage == embedding_stage(); }
  bool holds_head(int stage) const { return stage == head_stage(); }
  int coordinator_rank() const { return rank(0, 0); }
  // The rank that reports metrics and whose results collectives broadcast.
  int reporter_rank() const { return rank(0, head_stage()); }

  // The grid for the start-up log: "2 replicas x 2 stages (layout pipelines): replica 0 =
  // ranks 0,1; replica 1 = ranks 2,3".
  std::string describe() const;
};

}  // namespace conveyor::pipeline
