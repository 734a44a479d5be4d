// Pipeline schedules as data: for every stage, the ordered list of compute actions it runs
// in one training step. Pure functions of (kind, stages, micro-batches, virtual stages); no
// transport, no model, no clock. The executor runs one stage's list; the validator
// (schedule_validator.h) simulates all of them; schedule_grid.h draws them.
//
// Layout of virtual stages: Topology's (pipeline/schedule/topology.h), with the placement the
// kind implies (placement_of): round-robin, vs = chunk * p + stage (Megatron's interleaved
// layout), or V for zb-v and dualpipe-v (chunk 0 of stage s is vs s, chunk 1 is 2p-1-s).
//
// Communication is derived from the actions (comms_before / comms_after), and
// stage_program() lowers one stage's compute actions into the complete program the
// executor runs, with explicit receive and send steps (as PyTorch's pipelining lowers a
// compute-only schedule into one with SEND_F/RECV_F/SEND_B/RECV_B):
//   F(mb, chunk) at vs   receives the activation from vs-1 (unless vs == 0) and sends its
//                        output to vs+1 (unless vs is the last virtual stage);
//   B / BW(mb, chunk)    receives the output gradient from vs+1 (unless last) and sends the
//                        input gradient to vs-1 (unless vs == 0);
//   W(mb, chunk)         communicates nothing.
//
// Determinism rule (DESIGN.md, "Determinism is a feature"): on every stage and for every
// chunk, the weight-gradient work (BW or W) of the micro-batches runs in ascending
// micro-batch order, so gradients accumulate in the same order under every schedule. All
// generators here obey it and the validator rejects schedules that do not.
//
// Warm-up per hop (1f1b and zb-h1): stage s runs K*(p-1-s) forwards before its first backward
// instead of p-1-s, so K times as many micro-batches are on their way through each hop to the
// last stage and back. K = 1 is the textbook order (Megatron's, PyTorch's). A larger K hides
// a slow link: with one-way message time L, a stage's round trip to the last stage grows by
// 2L per hop, and 1F1B's warm-up covers only the compute of that round trip (measured in
// docs/BENCHMARKS.md, "A slow link between two stages"). It costs K times the activations;
// the order of the weight gradients, and so every result, is the same for every K.
//
// Thread safety: everything here is a pure function or a const member; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/schedule/topology.h"

namespace conveyor::pipeline {

enum class ScheduleKind {
  kGPipe,
  kOneFOneB,
  kInterleaved,
  kZeroBubbleH1,
  kZeroBubbleV,
  kDualPipeV
};

// Accepts "gpipe", "1f1b", "interleaved", "zb-h1", "zb-v", "dualpipe-v" (case-insensitive).
// Throws Error(kUsage) naming the valid kinds for anything else.
ScheduleKind parse_schedule_kind(const std::string& name);
// The canonical name accepted by parse_schedule_kind.
std::string to_string(ScheduleKind kind);
// The canonical names of all kinds, comma-separated (for help texts).
std::string schedule_kind_names();

// V for zb-v and dualpipe-v, round-robin for the rest.
Placement placement_of(ScheduleKind kind);
// The virtual stages per stage a kind takes when none are given: 2 for interleaved, zb-v and
// dualpipe-v (the V kinds take exactly 2), else 1.
int default_virtual_stages(ScheduleKind kind);

enum class Op : uint8_t {
  kForward,         // F: forward of one micro-batch through one chunk
  kBackward,        // BW: input gradient and weight gradient together
  kBackwardInput,   // B: input gradient only (zero-bubble schedules)
  kBackwardWeight,  // W: weight gradient only (zero-bubble schedules)
};
// "F", "BW", "B", "W".
const char* op_name(Op op);

struct Action {
  Op op;
  int microbatch;
  int chunk;
  bool operator==(const Action&) const = default;
};

struct Schedule {
  ScheduleKind kind;
  int stages;                                // p
  int microbatches;                          // m
  int virtual_stages;                        // v: chunks per stage (1 unless interleaved, V)
  std::vector<std::vector<Action>> actions;  // [stage] -> ordered actions
  int warmup_per_hop = 1;                    // K (see the top of this file); 1 unless 1f1b/zb-h1

  // The mapping of virtual stages to stages and chunks (one replica).
  Topology layout() const {
    return Topology{1, stages, virtual_stages, RankOrder::kPipelines, placement_of(kind)};
  }
  int virtual_stage(int stage, int chunk) const { return layout().virtual_stage(stage, chunk); }
  int num_virtual_stages() const { return layout().num_virtual_stages(); }
  int stage_of(int vs) const { return layout().stage_of(vs); }
  int chunk_of(int vs) const { return layout().chunk_of(vs); }

  // The bound the schedule promises: the largest number of (micro-batch, chunk) activations
  // held at once on `stage` (F done, its W or BW not yet done: W needs the activations),
  // counted over all chunks. The executor's slot pool holds exactly this many; the
  // validator checks the actions keep it.
  //   gpipe: m;  1f1b: min(K*(p-s-1) + 1, m);  zb-h1: min(K*(p-s-1) + 1 + s, m) (a micro-batch
  //   stays until its W, s of them behind the B's; with K = 1 that is p);
  //   interleaved: min(warmup + 1, v*m) with warmup = 2*(p - s - 1) + (v - 1)*p (Megatron);
  //   zb-v, dualpipe-v: the peak of their order, walked (v_schedules.h states it).
  int max_inflight(int stage) const;
};

// Builds the schedule. Throws Error(kUsage) with a fix for invalid combinations:
// stages < 1, microbatches < 1, virtual_stages < 1, interleaved with v < 2 or m % p != 0,
// zb-v or dualpipe-v with v != 2, dualpipe-v with m < 2p, any other kind with v != 1,
// warmup_per_hop outside 1..m, or != 1 for other kinds than 1f1b and zb-h1.
Schedule make_schedule(ScheduleKind kind, int stages, int microbatches, int virtual_stages = 1,
                       int warmup_per_hop = 1);

// The largest number of micro-batches on `stage` whose B has run but whose W has not yet
// (0 for schedules without a B/W split), walked from the action order. The executor keeps
// what W needs (the layer inputs and output gradients) for that many. For zb-h1 it is
// min(s + 1, m); F-to-W live activations stay <= p on every stage, 1F1B's stage-0 peak.
int peak_pending_weight(const Schedule& s, int stage);

// The chunks of `stage` in the order their last weight-gradient action (W, or BW) of a step
// runs: the order in which their gradients become final (pipeline/parallel/gradient_buckets.h).
std::vector<int> gradient_completion_order(const Schedule& s, int stage);

// ---- derived communication -------------------------------------------------------------

enum class CommKind : uint8_t {
  kRecvActivation,  // before F: input activation from virtual stage vs-1
  kSendActivation,  // after F: output activation to virtual stage vs+1
  kRecvGradient,    // before B/BW: output gradient from virtual stage vs+1
  kSendGradient,    // after B/BW: input gradient to virtual stage vs-1
};
const char* comm_kind_name(CommKind kind);

struct Comm {
  CommKind kind;
  int microbatch;
  int virtual_stage;       // the local end (the action's own virtual stage)
  int peer_virtual_stage;  // the other end
  int peer_stage;          // stage_of(peer_virtual_stage); == own stage only when p == 1
                           // (a hand-off between chunks of one process, no transport needed)
  bool operator==(const Comm&) const = default;
};

// The receives `action` on `stage` needs before it can run (0 or 1 entries).
std::vector<Comm> comms_before(const Schedule& s, int stage, const Action& action);
// The sends `action` on `stage` makes once it has run (0 or 1 entries).
std::vector<Comm> comms_after(const Schedule& s, int stage, const Action& action);

// One stage's complete program, in order: for each action, its receives, the action, its
// sends. A BW is lowered to its B part, the send of the input gradient, then its W part
// (compute steps with op kBackwardInput and kBackwardWeight), so the previous stage gets the
// gradient before the weight gradient is computed. The executor runs exactly this list.
struct StageStep {
  bool is_compute;   // true: `action` is the step; false: `comm` is
  Action action;     // the compute action (for comms: the schedule's action they belong to)
  Comm comm;         // valid when !is_compute
  int action_index;  // index in Schedule::actions[stage] of the action the step belongs to
};
std::vector<StageStep> stage_program(const Schedule& s, int stage);

}  // namespace conveyor::pipeline
