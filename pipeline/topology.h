// Topology: the one mapping between the job's ranks and its work, (replica, stage, virtual
// chunk) <-> rank. Everything that needs a peer asks it: the executor (through the
// schedule's program), the tied-embedding exchange, generation, the trace gather and
// checkpoint commit. Nothing else computes a peer.
//
// Layout
//   - Virtual stages: with v chunks per stage, virtual stage vs = chunk * stages + stage holds
//     the vs-th slice of the layers (round-robin, Megatron's interleaved layout). With v == 1,
//     virtual stage == stage and chunk == 0.
//   - Ranks: consecutive ranks form one pipeline: rank = replica * stages + stage. Today a job
//     has one replica (data-parallel replicas add only the collectives between the replicas
//     of each stage).
//   - The embedding is on stage_of(0) == 0; the head on stage_of(last virtual stage).
//   - Rank 0 (replica 0, stage 0) coordinates: it picks the checkpoint to resume, commits
//     saves and writes the trace.
//
// A pure value type; safe from any thread.
#pragma once

#include "common/error.h"

namespace conveyor::pipeline {

struct Topology {
  int replicas = 1;
  int stages = 1;
  int virtual_stages = 1;  // chunks per stage

  // Throws Error(kUsage) for a count below 1.
  static Topology make(int replicas, int stages, int virtual_stages) {
    CONVEYOR_REQUIRE(replicas >= 1, "the job needs at least one replica (got {})", replicas);
    CONVEYOR_REQUIRE(stages >= 1, "--stages is {}; it must be at least 1", stages);
    CONVEYOR_REQUIRE(virtual_stages >= 1, "--virtual-stages is {}; it must be at least 1",
                     virtual_stages);
    return Topology{replicas, stages, virtual_stages};
  }

  int world_size() const { return replicas * stages; }
  int num_virtual_stages() const { return stages * virtual_stages; }
  int last_virtual_stage() const { return num_virtual_stages() - 1; }

  int virtual_stage(int stage, int chunk) const { return chunk * stages + stage; }
  int stage_of(int vs) const { return vs % stages; }
  int chunk_of(int vs) const { return vs / stages; }

  struct Place {
    int replica;
    int stage;
  };
  int rank(int replica, int stage) const { return replica * stages + stage; }
  int rank_of_virtual_stage(int replica, int vs) const { return rank(replica, stage_of(vs)); }
  Place place(int rank) const { return {rank / stages, rank % stages}; }

  int embedding_stage() const { return stage_of(0); }
  int head_stage() const { return stage_of(last_virtual_stage()); }
  bool holds_embedding(int stage) const { return stage == embedding_stage(); }
  bool holds_head(int stage) const { return stage == head_stage(); }
  int coordinator_rank() const { return rank(0, 0); }
};

}  // namespace conveyor::pipeline
