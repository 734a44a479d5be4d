// The orders of zb-v and dualpipe-v (v_schedules.h). Each stage's list is written phase by
// phase with per-chunk counters, the way both reference implementations are.
#include "pipeline/schedule/v_schedules.h"

#include <algorithm>
#include <array>
#include <deque>
#include <utility>

namespace conveyor::pipeline {
namespace {

// One stage's order under construction: per chunk, the next micro-batch of each kind.
class StageOrder {
 public:
  StageOrder(std::vector<Action>& out, int microbatches) : out_(out), m_(microbatches) {}

  void forward(int chunk) { emit({Op::kForward, next_f_[chunk]++, chunk}); }
  // B and BW take the next backward; a B also queues its W for weight_from_queue().
  void backward(int chunk, Op op) {
    const int mb = next_b_[chunk]++;
    emit({op, mb, chunk});
    if (op == Op::kBackwardInput) pending_w_.emplace_back(chunk, mb);
  }
  // The next W of `chunk` in micro-batch order (zb-v keeps its own W counters).
  void weight(int chunk) { emit({Op::kBackwardWeight, next_w_[chunk]++, chunk}); }
  // The W of the oldest B whose W has not run (dualpipe-v's queue); none when empty.
  void weight_from_queue() {
    if (pending_w_.empty()) return;
    const auto [chunk, mb] = pending_w_.front();
    pending_w_.pop_front();
    emit({Op::kBackwardWeight, mb, chunk});
  }

  int forwards(int chunk) const { return next_f_[chunk]; }
  int backwards(int chunk) const { return next_b_[chunk]; }
  int weights(int chunk) const { return next_w_[chunk]; }
  void start_weights_at_backwards() { next_w_ = next_b_; }

 private:
  // Orders are computed for more micro-batches than the step has (zb-v); those are idle.
  void emit(const Action& a) {
    if (a.microbatch < m_) out_.push_back(a);
  }

  std::vector<Action>& out_;
  int m_;
  std::array<int, 2> next_f_{}, next_b_{}, next_w_{};
  std::deque<std::pair<int, int>> pending_w_;  // (chunk, micro-batch) of B's awaiting W
};

template <typename F>
void repeat(int n, F&& f) {
  for (int i = 0; i < n; ++i) f();
}

}  // namespace

void build_zb_v(Schedule& s) {
  const int p = s.stages;
  const int n = std::max(2 * p - 1, s.microbatches);  // enough to fill the V
  for (int r = 0; r < p; ++r) {
    StageOrder o(s.actions[r], s.microbatches);
    auto b_w = [&](int chunk) {
      o.backward(chunk, Op::kBackwardInput);
      o.weight(chunk);
    };
    // Warm-up: down the V on chunk 0, then in pairs, then chunk 1's first backwards.
    repeat(2 * (p - r) - 1, [&] { o.forward(0); });
    repeat(r, [&] {
      o.forward(1);
      o.forward(0);
    });
    repeat(p - r, [&] {
      o.forward(1);
      b_w(1);
    });
    // Steady state: one forward and one backward per chunk.
    while (o.forwards(1) < o.forwards(0) || o.forwards(0) < n) {
      if (o.forwards(0) < n) o.forward(0);
      b_w(0);
      o.forward(1);
      b_w(1);
    }
    // Cool-down: the remaining input gradients first, the weight gradients fill the gaps.
    o.start_weights_at_backwards();
    repeat(r, [&] {
      o.backward(0, Op::kBackwardInput);
      o.backward(1, Op::kBackwardInput);
    });
    repeat(p - r, [&] {
      o.backward(0, Op::kBackwardInput);
      o.weight(0);
    });
    while (o.weights(1) < o.backwards(1)) o.weight(1);
    while (o.weights(0) < o.backwards(0)) o.weight(0);
  }
}

void build_dualpipe_v(Schedule& s) {
  const int p = s.stages, m = s.microbatches;
  for (int r = 0; r < p; ++r) {
    StageOrder o(s.actions[r], m);
    // A forward on one chunk and a full backward on the other: overlapped on a GPU by
    // DualPipe, run one after the other here.
    auto pair = [&](int forward_chunk, int backward_chunk) {
      o.forward(forward_chunk);
      o.backward(backward_chunk, Op::kBackward);
    };
    repeat(2 * (p - r - 1), [&] { o.forward(0); });
    repeat(r + 1, [&] {
      o.forward(0);
      o.forward(1);
    });
    repeat(p - r - 1, [&] {
      o.backward(1, Op::kBackwardInput);
      o.weight_from_queue();
      o.forward(1);
    });
    // The main phase (the last stage's first pair is not overlapped, which on the CPU is the
    // same order).
    repeat(m - 2 * p + r + 1, [&] {
      pair(0, 1);
      pair(1, 0);
    });
    repeat(p - r - 1, [&] {
      o.backward(1, Op::kBackward);
      pair(1, 0);
    });
    // The second half of the last backwards is split, so their W's fill the cool-down.
    bool split = false;
    auto last_backward = [&](int chunk) {
      o.backward(chunk, split ? Op::kBackwardInput : Op::kBackward);
    };
    for (int i = 0; i <= r; ++i) {
      if (i == (r + 1) / 2 && r % 2 == 1) split = true;
      last_backward(1);
      if (i == (r + 1) / 2 && r % 2 == 0) split = true;
      last_backward(0);
    }
    repeat(p - r - 1, [&] {
      o.weight_from_queue();
      last_backward(0);
    });
    repeat(r + 1, [&] { o.weight_from_queue(); });
  }
}

}  // namespace conveyor::pipeline
