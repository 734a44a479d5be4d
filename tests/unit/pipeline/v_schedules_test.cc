// zb-v and dualpipe-v against PyTorch's orders, action for action, and what the V placement
// promises. The reference is a port of ScheduleZBVZeroBubble._calculate_single_rank_operations
// and ScheduleDualPipeV._calculate_single_rank_operations from torch/distributed/pipelining/
// schedules.py at pytorch/pytorch commit 00722e648b740f91d0e71494baa17891749fd291, kept in
// that code's shape (global stage indices, a None for an idle slot, per-(stage, type) counters,
// a weight queue) so that it can be read side by side with it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "pipeline/schedule/schedule.h"
#include "pipeline/schedule/schedule_validator.h"
#include "pipeline/schedule/topology.h"

using conveyor::Error;
using conveyor::ErrorKind;
using namespace conveyor::pipeline;

namespace reference {

// PyTorch's computation types for compute actions: F, I (input gradient), W, B (full
// backward), and OVERLAP_F_B (a forward and a full backward, run together).
enum class Type { F, I, W, B, OverlapFB };

struct PtAction {
  int stage_index;
  Type type;
  int microbatch;
  std::vector<PtAction> sub_actions;  // OverlapFB only
};

using RankOps = std::vector<std::optional<PtAction>>;

// ScheduleZBVZeroBubble._calculate_single_rank_operations(rank).
RankOps zbv_rank_ops(int pp_group_size, int n_microbatches, int rank) {
  const int num_stages = 2 * pp_group_size;
  const int n_micro = std::max(2 * pp_group_size - 1, n_microbatches);
  RankOps rank_ops(static_cast<size_t>(rank));  // rank Nones
  int f0_cnt = 0, f1_cnt = 0, b0_cnt = 0, b1_cnt = 0;
  const int warmup_n1 = 2 * (pp_group_size - rank) - 1;
  const int stage_id_chunk0 = rank;
  const int stage_id_chunk1 = num_stages - 1 - rank;
  auto add = [&](int stage, Type t, int mb) { rank_ops.push_back(PtAction{stage, t, mb, {}}); };
  for (int i = 0; i < warmup_n1; ++i) add(stage_id_chunk0, Type::F, f0_cnt++);
  const int warmup_n2 = rank;
  for (int i = 0; i < warmup_n2; ++i) {
    add(stage_id_chunk1, Type::F, f1_cnt++);
    add(stage_id_chunk0, Type::F, f0_cnt++);
  }
  const int warmup_n3 = pp_group_size - rank;
  for (int i = 0; i < warmup_n3; ++i) {
    add(stage_id_chunk1, Type::F, f1_cnt++);
    add(stage_id_chunk1, Type::I, b1_cnt);
    add(stage_id_chunk1, Type::W, b1_cnt);
    b1_cnt++;
  }
  while (f1_cnt < f0_cnt || f0_cnt < n_micro) {
    if (f0_cnt < n_micro) add(stage_id_chunk0, Type::F, f0_cnt++);
    add(stage_id_chunk0, Type::I, b0_cnt);
    add(stage_id_chunk0, Type::W, b0_cnt);
    b0_cnt++;
    add(stage_id_chunk1, Type::F, f1_cnt++);
    add(stage_id_chunk1, Type::I, b1_cnt);
    add(stage_id_chunk1, Type::W, b1_cnt);
    b1_cnt++;
  }
  int w0_cnt = b0_cnt, w1_cnt = b1_cnt;
  const int cooldown_n1 = rank;
  for (int i = 0; i < cooldown_n1; ++i) {
    add(stage_id_chunk0, Type::I, b0_cnt++);
    add(stage_id_chunk1, Type::I, b1_cnt++);
  }
  const int cooldown_n2 = pp_group_size - rank;
  for (int i = 0; i < cooldown_n2; ++i) {
    add(stage_id_chunk0, Type::I, b0_cnt++);
    add(stage_id_chunk0, Type::W, w0_cnt++);
  }
  while (w1_cnt < b1_cnt) add(stage_id_chunk1, Type::W, w1_cnt++);
  while (w0_cnt < b0_cnt) add(stage_id_chunk0, Type::W, w0_cnt++);
  REQUIRE((w0_cnt == b0_cnt && b0_cnt == f0_cnt));
  REQUIRE((w1_cnt == b1_cnt && b1_cnt == f1_cnt));
  // Micro-batches past n_microbatches become idle slots.
  for (auto& a : rank_ops)
    if (a && a->microbatch >= n_microbatches) a.reset();
  return rank_ops;
}

// ScheduleDualPipeV._calculate_single_rank_operations(rank).
RankOps dualpipev_rank_ops(int num_ranks, int n_microbatches, int rank) {
  RankOps actions;
  std::map<std::pair<int, Type>, int> counters;  // (stage_index, type) -> next micro-batch
  std::deque<std::pair<int, int>> weight_queue;  // (stage_index, micro-batch)
  const int num_chunks = n_microbatches;
  // generate_rank_to_stage_mapping(num_ranks, 2 * num_ranks, style="v")[rank]
  const int stage0_index = rank, stage1_index = 2 * num_ranks - 1 - rank;

  auto get = [&](int stage, Type t) {
    auto it = counters.find({stage, t});
    return it == counters.end() ? 0 : it->second;
  };
  auto increment_backward_counts = [&](int stage) {
    counters[{stage, Type::I}] = get(stage, Type::I) + 1;
    counters[{stage, Type::W}] = get(stage, Type::W) + 1;
  };
  auto add_overlap_f_b = [&](int forward_stage, int backward_stage) {
    const int forward_mb = get(forward_stage, Type::F);
    const int backward_mb = get(backward_stage, Type::I);
    actions.push_back(PtAction{-1,
                               Type::OverlapFB,
                               -1,
                               {PtAction{forward_stage, Type::F, forward_mb, {}},
                                PtAction{backward_stage, Type::B, backward_mb, {}}}});
    counters[{forward_stage, Type::F}] = forward_mb + 1;
    increment_backward_counts(backward_stage);
  };
  auto add_action = [&](int stage, Type t) {
    const std::pair<int, Type> key = t != Type::B ? std::pair{stage, t} : std::pair{stage, Type::I};
    const int mb_index = get(key.first, key.second);
    actions.push_back(PtAction{stage, t, mb_index, {}});
    if (t == Type::B) {
      increment_backward_counts(stage);
    } else {
      if (t == Type::I) weight_queue.emplace_back(stage, mb_index);
      counters[key] = mb_index + 1;
    }
  };
  auto add_weight_action_if_pending = [&] {
    if (weight_queue.empty()) return;
    const auto [actual_stage_index, weight_mb_index] = weight_queue.front();
    weight_queue.pop_front();
    actions.push_back(PtAction{actual_stage_index, Type::W, weight_mb_index, {}});
    counters[{actual_stage_index, Type::W}] = get(actual_stage_index, Type::W) + 1;
  };

  const int step_1 = (num_ranks - rank - 1) * 2;
  for (int i = 0; i < step_1; ++i) add_action(stage0_index, Type::F);
  const int step_2 = rank + 1;
  for (int i = 0; i < step_2; ++i) {
    add_action(stage0_index, Type::F);
    add_action(stage1_index, Type::F);
  }
  const int step_3 = num_ranks - rank - 1;
  for (int i = 0; i < step_3; ++i) {
    add_action(stage1_index, Type::I);
    add_weight_action_if_pending();
    add_action(stage1_index, Type::F);
  }
  const int step_4 = num_chunks - num_ranks * 2 + rank + 1;
  for (int i = 0; i < step_4; ++i) {
    if (i == 0 && rank == num_ranks - 1) {
      add_action(stage0_index, Type::F);
      add_action(stage1_index, Type::B);
    } else {
      add_overlap_f_b(stage0_index, stage1_index);
    }
    add_overlap_f_b(stage1_index, stage0_index);
  }
  const int step_5 = num_ranks - rank - 1;
  for (int i = 0; i < step_5; ++i) {
    add_action(stage1_index, Type::B);
    add_overlap_f_b(stage1_index, stage0_index);
  }
  const int step_6 = rank + 1;
  bool enable_zb = false;
  for (int i = 0; i < step_6; ++i) {
    if (i == step_6 / 2 && rank % 2 == 1) enable_zb = true;
    add_action(stage1_index, enable_zb ? Type::I : Type::B);
    if (i == step_6 / 2 && rank % 2 == 0) enable_zb = true;
    add_action(stage0_index, enable_zb ? Type::I : Type::B);
  }
  const int step_7 = num_ranks - rank - 1;
  for (int i = 0; i < step_7; ++i) {
    add_weight_action_if_pending();
    add_action(stage0_index, enable_zb ? Type::I : Type::B);
  }
  const int step_8 = rank + 1;
  for (int i = 0; i < step_8; ++i) add_weight_action_if_pending();
  return actions;
}

// PyTorch's rank order in conveyor's terms: idle slots dropped, an overlapped pair as its
// forward then its backward, global stage indices as chunks of the V (stage r is chunk 0,
// 2p-1-r chunk 1), I as B, B (full backward) as BW.
std::vector<Action> as_conveyor(const RankOps& ops, int p, int rank) {
  const Topology v = Topology::make(1, p, 2, RankOrder::kPipelines, Placement::kV);
  std::vector<Action> out;
  auto convert = [&](const PtAction& a) {
    REQUIRE(v.stage_of(a.stage_index) == rank);
    const Op op = a.type == Type::F   ? Op::kForward
                  : a.type == Type::I ? Op::kBackwardInput
                  : a.type == Type::W ? Op::kBackwardWeight
                                      : Op::kBackward;
    out.push_back(Action{op, a.microbatch, v.chunk_of(a.stage_index)});
  };
  for (const auto& a : ops) {
    if (!a) continue;
    if (a->type == Type::OverlapFB) {
      for (const PtAction& sub : a->sub_actions) convert(sub);
    } else {
      convert(*a);
    }
  }
  return out;
}

}  // namespace reference

TEST_CASE("zb-v equals PyTorch's ScheduleZBVZeroBubble for p 1..8, m 1..32", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 32; ++m) {
      const Schedule s = make_schedule(ScheduleKind::kZeroBubbleV, p, m, 2);
      for (int r = 0; r < p; ++r) {
        INFO("p " << p << " m " << m << " rank " << r);
        CHECK(s.actions[r] == reference::as_conveyor(reference::zbv_rank_ops(p, m, r), p, r));
      }
    }
  }
}

TEST_CASE("dualpipe-v equals PyTorch's ScheduleDualPipeV for p 1..8, m 2p..32", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 2 * p; m <= 32; ++m) {
      const Schedule s = make_schedule(ScheduleKind::kDualPipeV, p, m, 2);
      for (int r = 0; r < p; ++r) {
        INFO("p " << p << " m " << m << " rank " << r);
        CHECK(s.actions[r] == reference::as_conveyor(reference::dualpipev_rank_ops(p, m, r), p, r));
      }
    }
  }
}

TEST_CASE("dualpipe-v refuses fewer than 2p micro-batches, naming the fix", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m < 2 * p; ++m) {
      INFO("p " << p << " m " << m);
      try {
        make_schedule(ScheduleKind::kDualPipeV, p, m, 2);
        FAIL("accepted");
      } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::kUsage);
        CHECK_THAT(e.message(), Catch::Contains("--microbatches " + std::to_string(2 * p)));
      }
    }
  }
  for (auto k : {ScheduleKind::kZeroBubbleV, ScheduleKind::kDualPipeV}) {
    for (int v : {1, 3}) CHECK_THROWS_AS(make_schedule(k, 2, 8, v), Error);
  }
}

TEST_CASE("the V kinds pass the validator and keep their activation bounds", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 32; ++m) {
      INFO("p " << p << " m " << m);
      // zb-v holds no more than 1F1B's stage-0 peak: min(p, m) full-stage activations, each two
      // chunk activations.
      const Schedule zbv = make_schedule(ScheduleKind::kZeroBubbleV, p, m, 2);
      const SimulationResult r = validate_schedule(zbv);
      for (int st = 0; st < p; ++st) CHECK(r.peak_inflight[st] <= 2 * std::min(p, m));
      if (m >= 2 * p) {
        const Schedule dpv = make_schedule(ScheduleKind::kDualPipeV, p, m, 2);
        const SimulationResult d = validate_schedule(dpv);
        // DualPipe's own bound: one chunk activation more than zb-v's, on every stage.
        for (int st = 0; st < p; ++st) CHECK(d.peak_inflight[st] <= 2 * p + 1);
      }
    }
  }
}

TEST_CASE("zb-v's bubble is at most a third of 1F1B's with F = B = W", "[schedule]") {
  const Costs unit{1, 1, 1};
  for (int p = 2; p <= 8; ++p) {
    for (int m = 2 * p; m <= 32; ++m) {
      INFO("p " << p << " m " << m);
      const double one_f_one_b = double(p - 1) / double(m + p - 1);
      const auto zbv = validate_schedule(make_schedule(ScheduleKind::kZeroBubbleV, p, m, 2), unit);
      CHECK(zbv.bubble <= one_f_one_b / 3);
      const auto dpv = validate_schedule(make_schedule(ScheduleKind::kDualPipeV, p, m, 2), unit);
      CHECK(dpv.bubble < one_f_one_b);
    }
  }
}

TEST_CASE("the V placement puts both ends of the model on stage 0", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    const Topology t = Topology::make(1, p, 2, RankOrder::kPipelines, Placement::kV);
    INFO("p " << p);
    for (int vs = 0; vs < 2 * p; ++vs) CHECK(t.virtual_stage(t.stage_of(vs), t.chunk_of(vs)) == vs);
    for (int s = 0; s < p; ++s) {
      CHECK(t.virtual_stage(s, 0) == s);
      CHECK(t.virtual_stage(s, 1) == 2 * p - 1 - s);
    }
    CHECK(t.embedding_stage() == 0);
    CHECK(t.head_stage() == 0);
    CHECK(t.stage_of(p - 1) == t.stage_of(p));  // the turn of the V stays on one stage
  }
  CHECK_THROWS_AS(Topology::make(1, 4, 3, RankOrder::kPipelines, Placement::kV), Error);
}
