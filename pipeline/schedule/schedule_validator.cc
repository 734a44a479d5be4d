// Three passes: counts (missing / duplicate), per-stage order (dependencies on the same
// stage, in-flight bound, weight-gradient order), then the all-stage simulation (waits on
// other stages, deadlock). Each fault stops at the first one found and reports it with the
// step grid, so the message points at one cell rather than a cascade of follow-on errors.
#include "pipeline/schedule/schedule_validator.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "pipeline/schedule/schedule_grid.h"

namespace conveyor::pipeline {
namespace {

[[noreturn]] void fail(const Schedule& s, const std::string& fault,
                       const std::vector<std::pair<int, int>>& marked) {
  std::string text = fmt::format(
      "schedule validation failed ({}, stages {}, microbatches {}, virtual stages {}): {}\n"
      "step x stage grid (faulty cells in [ ]):\n{}",
      to_string(s.kind), s.stages, s.microbatches, s.virtual_stages, fault,
      render_step_grid(s, marked));
  throw Error(
      ErrorKind::kRuntime, text,
      "the schedule's action order is wrong; fix its generator (pipeline/schedule/schedule.cc)");
}

bool is_backward(Op op) {
  return op == Op::kBackward || op == Op::kBackwardInput;
}
bool is_weight(Op op) {
  return op == Op::kBackward || op == Op::kBackwardWeight;
}

// Per (chunk, micro-batch) table on one stage.
template <typename T>
struct Table {
  int m;
  std::vector<T> cells;
  Table(int v, int m_, T init) : m(m_), cells(static_cast<size_t>(v) * m_, init) {}
  T& at(int chunk, int mb) { return cells[static_cast<size_t>(chunk) * m + mb]; }
};

void check_shape(const Schedule& s) {
  CONVEYOR_CHECK(s.stages >= 1 && s.microbatches >= 1 && s.virtual_stages >= 1,
                 "schedule has stages {}, microbatches {}, virtual stages {}; all must be >= 1",
                 s.stages, s.microbatches, s.virtual_stages);
  CONVEYOR_CHECK(static_cast<int>(s.actions.size()) == s.stages,
                 "schedule has action lists for {} stages but says it has {} stages",
                 s.actions.size(), s.stages);
  for (int st = 0; st < s.stages; ++st) {
    const auto& acts = s.actions[st];
    for (int i = 0; i < static_cast<int>(acts.size()); ++i) {
      const Action& a = acts[i];
      if (a.microbatch < 0 || a.microbatch >= s.microbatches || a.chunk < 0 ||
          a.chunk >= s.virtual_stages || static_cast<int>(a.op) > 3) {
        fail(s,
             fmt::format("invalid action: step {} on stage {} names micro-batch {} chunk {} "
                         "(valid: micro-batch 0..{}, chunk 0..{})",
                         i, st, a.microbatch, a.chunk, s.microbatches - 1, s.virtual_stages - 1),
             {{st, i}});
      }
    }
  }
}

// Every (mb, chunk) on every stage: exactly one F, and either one BW or one B and one W.
void check_counts(const Schedule& s) {
  const int v = s.virtual_stages, m = s.microbatches;
  for (int st = 0; st < s.stages; ++st) {
    const auto& acts = s.actions[st];
    // first index of each op per (chunk, mb); -1 = never
    Table<int> first_f(v, m, -1), first_bw(v, m, -1), first_b(v, m, -1), first_w(v, m, -1);
    for (int i = 0; i < static_cast<int>(acts.size()); ++i) {
      const Action& a = acts[i];
      Table<int>* t = a.op == Op::kForward         ? &first_f
                      : a.op == Op::kBackward      ? &first_bw
                      : a.op == Op::kBackwardInput ? &first_b
                                                   : &first_w;
      int& first = t->at(a.chunk, a.microbatch);
      if (first >= 0) {
        fail(s,
             fmt::format("duplicate action: {} runs twice on stage {} (steps {} and {})",
                         action_label(s, a), st, first, i),
             {{st, first}, {st, i}});
      }
      first = i;
      const bool mixed = (a.op == Op::kBackward && (first_b.at(a.chunk, a.microbatch) >= 0 ||
                                                    first_w.at(a.chunk, a.microbatch) >= 0)) ||
                         (a.op != Op::kForward && a.op != Op::kBackward &&
                          first_bw.at(a.chunk, a.microbatch) >= 0);
      if (mixed) {
        fail(s,
             fmt::format("duplicate action: {} on stage {} (step {}) repeats backward work of "
                         "micro-batch {} chunk {}, which already has a combined BW or B/W",
                         action_label(s, a), st, i, a.microbatch, a.chunk),
             {{st, i}});
      }
    }
    for (int c = 0; c < v; ++c) {
      for (int mb = 0; mb < m; ++mb) {
        auto missing = [&](Op op) {
          fail(s,
               fmt::format("missing action: {} never runs on stage {}",
                           action_label(s, Action{op, mb, c}), st),
               {});
        };
        if (first_f.at(c, mb) < 0) missing(Op::kForward);
        const bool has_bw = first_bw.at(c, mb) >= 0;
        const bool has_b = first_b.at(c, mb) >= 0, has_w = first_w.at(c, mb) >= 0;
        if (!has_bw && !has_b && !has_w) missing(Op::kBackward);
        if (!has_bw && has_b && !has_w) missing(Op::kBackwardWeight);
        if (!has_bw && !has_b && has_w) missing(Op::kBackwardInput);
      }
    }
  }
}

// Order on one stage: B/BW after F, W after B, in-flight bound, ascending weight gradients.
// Records the peaks in `result`.
void check_stage_order(const Schedule& s, SimulationResult& result) {
  const int v = s.virtual_stages, m = s.microbatches;
  for (int st = 0; st < s.stages; ++st) {
    const auto& acts = s.actions[st];
    Table<int> f_at(v, m, -1), b_at(v, m, -1), w_at(v, m, -1);
    std::vector<int> last_weight_mb(v, -1), last_weight_step(v, -1);
    int inflight = 0, pending_w = 0, peak = 0, peak_w = 0;
    const int bound = s.max_inflight(st);
    for (int i = 0; i < static_cast<int>(acts.size()); ++i) {
      const Action& a = acts[i];
      const std::string label = action_label(s, a);
      if (a.op == Op::kForward) {
        f_at.at(a.chunk, a.microbatch) = i;
        peak = std::max(peak, ++inflight);
        if (inflight > bound) {
          fail(s,
               fmt::format("too many activations in flight: {} on stage {} (step {}) holds {} "
                           "activations, the {} schedule promises at most {}",
                           label, st, i, inflight, to_string(s.kind), bound),
               {{st, i}});
        }
      }
      if (is_backward(a.op)) {
        const int f = f_at.at(a.chunk, a.microbatch);
        if (f < 0) {
          const Action fwd{Op::kForward, a.microbatch, a.chunk};
          int f_later = -1;
          for (int j = i + 1; j < static_cast<int>(acts.size()); ++j) {
            if (acts[j] == fwd) f_later = j;
          }
          fail(s,
               fmt::format("broken dependency: {} on stage {} (step {}) runs before its {}", label,
                           st, i, action_label(s, fwd)),
               f_later >= 0 ? std::vector<std::pair<int, int>>{{st, i}, {st, f_later}}
                            : std::vector<std::pair<int, int>>{{st, i}});
        }
        b_at.at(a.chunk, a.microbatch) = i;
        if (a.op == Op::kBackwardInput) peak_w = std::max(peak_w, ++pending_w);
      }
      if (a.op == Op::kBackwardWeight) {
        if (b_at.at(a.chunk, a.microbatch) < 0) {
          fail(s,
               fmt::format("broken dependency: {} on stage {} (step {}) runs before its {}", label,
                           st, i,
                           action_label(s, Action{Op::kBackwardInput, a.microbatch, a.chunk})),
               {{st, i}});
        }
        --pending_w;
      }
      if (is_weight(a.op)) {
        --inflight;  // the activations are kept until the weight gradient has used them
        int& last = last_weight_mb[a.chunk];
        if (a.microbatch < last) {
          fail(s,
               fmt::format("weight gradients out of order: {} on stage {} (step {}) runs after "
                           "micro-batch {}'s weight gradient; weight-gradient work (BW or W) "
                           "of a chunk must run in ascending micro-batch order so gradients "
                           "accumulate deterministically",
                           label, st, i, last),
               {{st, last_weight_step[a.chunk]}, {st, i}});
        }
        last = a.microbatch;
        last_weight_step[a.chunk] = i;
      }
    }
    result.peak_inflight[st] = peak;
    result.peak_pending_weight[st] = peak_w;
  }
}

void simulate(const Schedule& s, const Costs& costs, SimulationResult& r) {
  const int p = s.stages, m = s.microbatches, vn = s.num_virtual_stages();
  // End time of F and of B/BW per (virtual stage, micro-batch); < 0 = not yet run.
  std::vector<double> f_end(static_cast<size_t>(vn) * m, -1), b_end(f_end);
  auto idx = [m](int vs, int mb) { return static_cast<size_t>(vs) * m + mb; };
  std::vector<size_t> next(p, 0);
  std::vector<double> free_at(p, 0);
  size_t remaining = 0;
  for (const auto& a : s.actions) remaining += a.size();

  while (remaining > 0) {
    bool progressed = false;
    for (int st = 0; st < p; ++st) {
      const auto& acts = s.actions[st];
      while (next[st] < acts.size()) {
        const Action& a = acts[next[st]];
        const int vs = s.virtual_stage(st, a.chunk);
        double ready = free_at[st];  // same-stage dependencies ended before free_at
        if (a.op == Op::kForward && vs > 0) {
          const double dep = f_end[idx(vs - 1, a.microbatch)];
          if (dep < 0) break;
          ready = std::max(ready, dep);
        } else if (is_backward(a.op) && vs < vn - 1) {
          const double dep = b_end[idx(vs + 1, a.microbatch)];
          if (dep < 0) break;
          ready = std::max(ready, dep);
        }
        const double end = ready + costs.of(a.op);
        r.times[st][next[st]] = {ready, end};
        r.busy[st] += end - ready;
        free_at[st] = end;
        if (a.op == Op::kForward) f_end[idx(vs, a.microbatch)] = end;
        // The input gradient leaves after B: a BW runs as B, the send, then W
        // (stage_program), so the stage before it waits for the B part only.
        if (is_backward(a.op))
          b_end[idx(vs, a.microbatch)] = a.op == Op::kBackward ? ready + costs.b : end;
        ++next[st];
        --remaining;
        progressed = true;
      }
    }
    if (!progressed) {
      std::string waits;
      std::vector<std::pair<int, int>> stuck;
      for (int st = 0; st < p; ++st) {
        if (next[st] >= s.actions[st].size()) continue;
        const Action& a = s.actions[st][next[st]];
        const int vs = s.virtual_stage(st, a.chunk);
        const bool fwd = a.op == Op::kForward;
        const int peer_vs = fwd ? vs - 1 : vs + 1;
        const Action needed{fwd ? Op::kForward : a.op, a.microbatch, s.chunk_of(peer_vs)};
        waits +=
            fmt::format("\n  stage {} is stuck at step {} ({}): waits for {} of stage {}", st,
                        next[st], action_label(s, a), action_label(s, needed), s.stage_of(peer_vs));
        stuck.emplace_back(st, static_cast<int>(next[st]));
      }
      fail(s, "deadlock: no stage can progress" + waits, stuck);
    }
  }
  r.makespan = *std::max_element(free_at.begin(), free_at.end());
  double busy = 0;
  for (double b : r.busy) busy += b;
  const double area = r.makespan * p;
  r.bubble = area > 0 ? (area - busy) / area : 0;
}

}  // namespace

double Costs::of(Op op) const {
  switch (op) {
    case Op::kForward:
      return f;
    case Op::kBackward:
      return b + w;
    case Op::kBackwardInput:
      return b;
    case Op::kBackwardWeight:
      return w;
  }
  return 0;
}

SimulationResult validate_schedule(const Schedule& schedule, const Costs& costs) {
  for (double c : {costs.f, costs.b, costs.w}) {
    CONVEYOR_REQUIRE(std::isfinite(c) && c >= 0,
                     "action costs must be finite and >= 0 (got f {}, b {}, w {})", costs.f,
                     costs.b, costs.w);
  }
  check_shape(schedule);
  SimulationResult r;
  const int p = schedule.stages;
  r.busy.assign(p, 0);
  r.peak_inflight.assign(p, 0);
  r.peak_pending_weight.assign(p, 0);
  r.times.resize(p);
  for (int st = 0; st < p; ++st) r.times[st].resize(schedule.actions[st].size());
  check_counts(schedule);
  check_stage_order(schedule, r);
  simulate(schedule, costs, r);
  return r;
}

std::optional<double> theoretical_bubble(ScheduleKind kind, int p, int m, int v, const Costs& c) {
  switch (kind) {
    case ScheduleKind::kGPipe:
    case ScheduleKind::kOneFOneB:
      return double(p - 1) / double(m + p - 1);
    case ScheduleKind::kInterleaved:
      return double(p - 1) / double(v * m + p - 1);
    case ScheduleKind::kZeroBubbleH1: {
      const double idle = (p - 1) * std::max(0.0, c.f + c.b - c.w);
      const double total = m * (c.f + c.b + c.w) + idle;
      return total > 0 ? idle / total : 0;
    }
    case ScheduleKind::kZeroBubbleV:
    case ScheduleKind::kDualPipeV:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace conveyor::pipeline
