// Schedule generators. Each one writes the per-stage order directly; the validator's
// simulation (schedule_validator.cc) is what proves them deadlock-free and measures bubbles.
#include "pipeline/schedule/schedule.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include "common/error.h"
#include "pipeline/schedule/v_schedules.h"

namespace conveyor::pipeline {
namespace {

struct KindName {
  ScheduleKind kind;
  const char* name;
};
constexpr KindName kKindNames[] = {
    {ScheduleKind::kGPipe, "gpipe"},
    {ScheduleKind::kOneFOneB, "1f1b"},
    {ScheduleKind::kInterleaved, "interleaved"},
    {ScheduleKind::kZeroBubbleH1, "zb-h1"},
    {ScheduleKind::kZeroBubbleV, "zb-v"},
    {ScheduleKind::kDualPipeV, "dualpipe-v"},
};

bool is_v_kind(ScheduleKind kind) {
  return kind == ScheduleKind::kZeroBubbleV || kind == ScheduleKind::kDualPipeV;
}

// The most activations (F done, W or BW not) `stage`'s order holds at once, counted over all
// chunks.
int walked_peak_inflight(const Schedule& s, int stage) {
  int held = 0, peak = 0;
  for (const Action& a : s.actions.at(stage)) {
    if (a.op == Op::kForward) peak = std::max(peak, ++held);
    if (a.op == Op::kBackward || a.op == Op::kBackwardWeight) --held;
  }
  return peak;
}

// Megatron's interleaved warm-up: forwards run before the first backward on `stage`.
int interleaved_warmup(int p, int m, int v, int stage) {
  return std::min(2 * (p - stage - 1) + (v - 1) * p, m * v);
}

// GPipe (fill-drain): all forwards, then all backwards. Backwards run in ascending
// micro-batch order (not GPipe's usual reverse) to keep the determinism rule; the bubble
// is the same.
void build_gpipe(Schedule& s) {
  for (int st = 0; st < s.stages; ++st) {
    auto& a = s.actions[st];
    for (int mb = 0; mb < s.microbatches; ++mb) a.push_back({Op::kForward, mb, 0});
    for (int mb = 0; mb < s.microbatches; ++mb) a.push_back({Op::kBackward, mb, 0});
  }
}

// Forwards stage `stage` runs before its first backward under 1f1b and zb-h1.
int one_f_one_b_warmup(const Schedule& s, int stage) {
  return static_cast<int>(
      std::min<int64_t>(int64_t{s.warmup_per_hop} * (s.stages - stage - 1), s.microbatches));
}

// 1F1B (PipeDream-Flush): stage s runs min(p-s-1, m) warm-up forwards (K times that with
// warm-up per hop K), then alternates one forward and one backward, then drains the remaining
// backwards. At most warm-up + 1 activations are alive at once (p-s for K = 1).
void build_1f1b(Schedule& s) {
  const int p = s.stages, m = s.microbatches;
  for (int st = 0; st < p; ++st) {
    auto& a = s.actions[st];
    const int warmup = one_f_one_b_warmup(s, st);
    for (int mb = 0; mb < warmup; ++mb) a.push_back({Op::kForward, mb, 0});
    for (int i = 0; i < m - warmup; ++i) {
      a.push_back({Op::kForward, warmup + i, 0});
      a.push_back({Op::kBackward, i, 0});
    }
    for (int i = m - warmup; i < m; ++i) a.push_back({Op::kBackward, i, 0});
  }
}

// ZB-H1 (Zero Bubble, Qi et al. 2023): the 1F1B order with the backward split into B
// (input gradient, on the critical path) and W (weight gradient, off it). Stage s keeps
// its W's s micro-batches behind its B's; the deferred W's fill the cool-down, where in
// 1F1B stage s idles while the gradients travel back from the last stage. Warm-up is the
// same as 1F1B, so activations in flight (F done, B not) stay at min(p-s, m). With
// F = B = W the step takes 3m + p - 1 units instead of 1F1B's 3(m + p - 1) (m >= p).
void build_zb_h1(Schedule& s) {
  const int p = s.stages, m = s.microbatches;
  for (int st = 0; st < p; ++st) {
    auto& a = s.actions[st];
    const int warmup = one_f_one_b_warmup(s, st);
    const int deferred = st;  // W's kept back behind the B's on this stage
    int next_w = 0, num_b = 0;
    auto backward = [&](int mb) {
      a.push_back({Op::kBackwardInput, mb, 0});
      ++num_b;
      if (num_b - next_w > deferred) a.push_back({Op::kBackwardWeight, next_w++, 0});
    };
    for (int mb = 0; mb < warmup; ++mb) a.push_back({Op::kForward, mb, 0});
    for (int i = 0; i < m - warmup; ++i) {
      a.push_back({Op::kForward, warmup + i, 0});
      backward(i);
    }
    for (int i = m - warmup; i < m; ++i) backward(i);
    while (next_w < m) a.push_back({Op::kBackwardWeight, next_w++, 0});
  }
}

// Interleaved 1F1B (Megatron-LM, Narayanan et al. 2021), micro-batch group size p: the
// k-th forward on a stage is micro-batch (k / (p*v)) * p + k % p on chunk (k / p) % v; the
// k-th backward walks the chunks in reverse. Warm-up 2*(p-s-1) + (v-1)*p forwards, then
// 1F1B, then drain. Within a chunk, backwards stay in ascending micro-batch order.
void build_interleaved(Schedule& s) {
  const int p = s.stages, m = s.microbatches, v = s.virtual_stages;
  const int total = m * v;
  auto fwd = [&](int k) { return Action{Op::kForward, (k / (p * v)) * p + k % p, (k / p) % v}; };
  auto bwd = [&](int k) {
    return Action{Op::kBackward, (k / (p * v)) * p + k % p, v - 1 - (k / p) % v};
  };
  for (int st = 0; st < p; ++st) {
    auto& a = s.actions[st];
    const int warmup = interleaved_warmup(p, m, v, st);
    for (int k = 0; k < warmup; ++k) a.push_back(fwd(k));
    for (int i = 0; i < total - warmup; ++i) {
      a.push_back(fwd(warmup + i));
      a.push_back(bwd(i));
    }
    for (int i = total - warmup; i < total; ++i) a.push_back(bwd(i));
  }
}

}  // namespace

ScheduleKind parse_schedule_kind(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const auto& k : kKindNames) {
    if (lower == k.name) return k.kind;
  }
  throw Error(ErrorKind::kUsage, fmt::format("unknown schedule '{}'", name),
              fmt::format("use one of: {}", schedule_kind_names()));
}

std::string to_string(ScheduleKind kind) {
  for (const auto& k : kKindNames) {
    if (k.kind == kind) return k.name;
  }
  return "unknown";
}

std::string schedule_kind_names() {
  std::string out;
  for (const auto& k : kKindNames) {
    if (!out.empty()) out += ", ";
    out += k.name;
  }
  return out;
}

Placement placement_of(ScheduleKind kind) {
  return is_v_kind(kind) ? Placement::kV : Placement::kRoundRobin;
}

int default_virtual_stages(ScheduleKind kind) {
  return kind == ScheduleKind::kInterleaved || is_v_kind(kind) ? 2 : 1;
}

const char* op_name(Op op) {
  switch (op) {
    case Op::kForward:
      return "F";
    case Op::kBackward:
      return "BW";
    case Op::kBackwardInput:
      return "B";
    case Op::kBackwardWeight:
      return "W";
  }
  return "?";
}

int Schedule::max_inflight(int stage) const {
  const int p = stages, m = microbatches, v = virtual_stages;
  switch (kind) {
    case ScheduleKind::kGPipe:
      return m;
    case ScheduleKind::kOneFOneB:
      return std::min(one_f_one_b_warmup(*this, stage) + 1, m);
    case ScheduleKind::kZeroBubbleH1:
      return std::min(one_f_one_b_warmup(*this, stage) + 1 + stage, m);
    case ScheduleKind::kInterleaved:
      return std::min(interleaved_warmup(p, m, v, stage) + 1, m * v);
    case ScheduleKind::kZeroBubbleV:
    case ScheduleKind::kDualPipeV:
      return walked_peak_inflight(*this, stage);
  }
  return 0;
}

Schedule make_schedule(ScheduleKind kind, int stages, int microbatches, int virtual_stages,
                       int warmup_per_hop) {
  CONVEYOR_REQUIRE(stages >= 1, "--stages is {}; it must be at least 1", stages);
  CONVEYOR_REQUIRE(microbatches >= 1, "--microbatches is {}; it must be at least 1", microbatches);
  if (kind == ScheduleKind::kInterleaved) {
    CONVEYOR_REQUIRE(virtual_stages >= 2,
                     "--schedule interleaved needs --virtual-stages of 2 or more (got {}); "
                     "use --virtual-stages 2, or --schedule 1f1b for one chunk per stage",
                     virtual_stages);
    CONVEYOR_REQUIRE(microbatches % stages == 0,
                     "--schedule interleaved needs --microbatches ({}) to be a multiple of "
                     "--stages ({}); use --microbatches {}",
                     microbatches, stages,
                     std::max(stages, (microbatches + stages - 1) / stages * stages));
  } else if (is_v_kind(kind)) {
    CONVEYOR_REQUIRE(virtual_stages == 2,
                     "--schedule {} places exactly 2 virtual stages on each stage (s and "
                     "2*stages-1-s); leave --virtual-stages out, or give 2 (got {})",
                     to_string(kind), virtual_stages);
    CONVEYOR_REQUIRE(kind != ScheduleKind::kDualPipeV || microbatches >= 2 * stages,
                     "--schedule dualpipe-v needs at least 2 x --stages micro-batches ({} for "
                     "{} stages; got {}); use --microbatches {}, or --schedule zb-v",
                     2 * stages, stages, microbatches, 2 * stages);
  } else {
    CONVEYOR_REQUIRE(virtual_stages == 1,
                     "--virtual-stages {} only applies to --schedule interleaved (zb-v and "
                     "dualpipe-v take 2); use --virtual-stages 1 with --schedule {}",
                     virtual_stages, to_string(kind));
  }

  CONVEYOR_REQUIRE(warmup_per_hop >= 1 && warmup_per_hop <= microbatches,
                   "--warmup-per-hop is {}; it must be between 1 and --microbatches ({}): more "
                   "warm-up forwards than micro-batches change nothing",
                   warmup_per_hop, microbatches);
  CONVEYOR_REQUIRE(
      warmup_per_hop == 1 || kind == ScheduleKind::kOneFOneB || kind == ScheduleKind::kZeroBubbleH1,
      "--warmup-per-hop {} only applies to --schedule 1f1b and zb-h1 ({} has its own "
      "warm-up); use --warmup-per-hop 1 with --schedule {}",
      warmup_per_hop, to_string(kind), to_string(kind));

  Schedule s{kind, stages, microbatches, virtual_stages, {}, warmup_per_hop};
  s.actions.resize(stages);
  switch (kind) {
    case ScheduleKind::kGPipe:
      build_gpipe(s);
      break;
    case ScheduleKind::kOneFOneB:
      build_1f1b(s);
      break;
    case ScheduleKind::kInterleaved:
      build_interleaved(s);
      break;
    case ScheduleKind::kZeroBubbleH1:
      build_zb_h1(s);
      break;
    case ScheduleKind::kZeroBubbleV:
      build_zb_v(s);
      break;
    case ScheduleKind::kDualPipeV:
      build_dualpipe_v(s);
      break;
  }
  return s;
}

int peak_pending_weight(const Schedule& s, int stage) {
  int pending = 0, peak = 0;
  for (const Action& a : s.actions.at(stage)) {
    if (a.op == Op::kBackwardInput) peak = std::max(peak, ++pending);
    if (a.op == Op::kBackwardWeight) --pending;
  }
  return peak;
}

const char* comm_kind_name(CommKind kind) {
  switch (kind) {
    case CommKind::kRecvActivation:
      return "recv-activation";
    case CommKind::kSendActivation:
      return "send-activation";
    case CommKind::kRecvGradient:
      return "recv-gradient";
    case CommKind::kSendGradient:
      return "send-gradient";
  }
  return "?";
}

namespace {
Comm make_comm(const Schedule& s, CommKind kind, int mb, int vs, int peer_vs) {
  return Comm{kind, mb, vs, peer_vs, s.stage_of(peer_vs)};
}
}  // namespace

std::vector<Comm> comms_before(const Schedule& s, int stage, const Action& a) {
  const int vs = s.virtual_stage(stage, a.chunk);
  const int last = s.num_virtual_stages() - 1;
  if (a.op == Op::kForward && vs > 0) {
    return {make_comm(s, CommKind::kRecvActivation, a.microbatch, vs, vs - 1)};
  }
  if ((a.op == Op::kBackward || a.op == Op::kBackwardInput) && vs < last) {
    return {make_comm(s, CommKind::kRecvGradient, a.microbatch, vs, vs + 1)};
  }
  return {};
}

std::vector<Comm> comms_after(const Schedule& s, int stage, const Action& a) {
  const int vs = s.virtual_stage(stage, a.chunk);
  const int last = s.num_virtual_stages() - 1;
  if (a.op == Op::kForward && vs < last) {
    return {make_comm(s, CommKind::kSendActivation, a.microbatch, vs, vs + 1)};
  }
  if ((a.op == Op::kBackward || a.op == Op::kBackwardInput) && vs > 0) {
    return {make_comm(s, CommKind::kSendGradient, a.microbatch, vs, vs - 1)};
  }
  return {};
}

std::vector<StageStep> stage_program(const Schedule& s, int stage) {
  std::vector<StageStep> out;
  const auto& actions = s.actions.at(stage);
  for (int i = 0; i < static_cast<int>(actions.size()); ++i) {
    const Action& a = actions[i];
    for (const Comm& c : comms_before(s, stage, a)) out.push_back({false, a, c, i});
    const bool split = a.op == Op::kBackward;
    const Action first = split ? Action{Op::kBackwardInput, a.microbatch, a.chunk} : a;
    out.push_back({true, first, Comm{}, i});
    for (const Comm& c : comms_after(s, stage, a)) out.push_back({false, a, c, i});
    if (split) out.push_back({true, Action{Op::kBackwardWeight, a.microbatch, a.chunk}, Comm{}, i});
  }
  return out;
}

std::vector<int> gradient_completion_order(const Schedule& s, int stage) {
  std::vector<int> last(size_t(s.virtual_stages), -1);  // [chunk] index of its last W or BW
  const auto& actions = s.actions[size_t(stage)];
  for (size_t i = 0; i < actions.size(); ++i) {
    const Action& a = actions[i];
    if (a.op == Op::kBackwardWeight || a.op == Op::kBackward) last[size_t(a.chunk)] = int(i);
  }
  std::vector<int> order;
  for (int c = 0; c < s.virtual_stages; ++c) order.push_back(c);
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return last[size_t(a)] < last[size_t(b)]; });
  return order;
}

}  // namespace conveyor::pipeline
