#include "pipeline/executor.h"

#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "common/clock.h"
#include "common/error.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

namespace {

double wall_us() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// One micro-batch's activations on one chunk, plus the transfers that touch them.
struct Executor::SlotState {
  std::unique_ptr<model::Slot> slot;
  std::unique_ptr<transport::MemoryRegion> region;
  std::vector<transport::Request> sends;  // must complete before the slot is reused
  transport::Request recv;                // the activation or gradient being received
  bool recv_pending = false;
  bool in_use = false;
};

struct Executor::Impl {
  model::StageModel& model;
  const Schedule& sched;
  int stage, p, last_vs;
  transport::Transport* transport;
  ExecutorOptions options;
  size_t act_bytes;  // N*C floats

  std::vector<std::vector<std::unique_ptr<SlotState>>> pool;  // [chunk] -> slots
  std::map<std::pair<int, int>, SlotState*> active;           // (mb, chunk) -> slot
  int inflight_fb = 0, peak_fb = 0, inflight_slots = 0, peak_slots = 0;

  int64_t step = 0;
  const BatchLoader* load = nullptr;
  StepResult result;

  Impl(model::StageModel& m, const Schedule& s, int st, transport::Transport* t,
       const ExecutorOptions& o)
      : model(m),
        sched(s),
        stage(st),
        p(s.stages),
        last_vs(s.num_virtual_stages() - 1),
        transport(t),
        options(o),
        act_bytes(size_t(m.micro_batch_size()) * m.config().seq * m.config().dim * sizeof(float)) {
    pool.resize(m.num_chunks());
  }

  Deadline deadline() const { return Deadline::after_seconds(options.wait_timeout_s); }

  transport::Tag tag(int mb, int chunk, transport::Tag::Direction dir) const {
    return transport::Tag{static_cast<uint32_t>(step), static_cast<uint16_t>(mb),
                          static_cast<uint8_t>(chunk), dir};
  }

  SlotState& slot(int mb, int chunk) {
    auto it = active.find({mb, chunk});
    if (it != active.end()) return *it->second;
    SlotState* s = nullptr;
    for (auto& candidate : pool[chunk]) {
      if (!candidate->in_use) {
        s = candidate.get();
        break;
      }
    }
    if (!s) {
      auto fresh = std::make_unique<SlotState>();
      fresh->slot = model.chunk(chunk).make_slot();
      if (transport) {
        fresh->region = std::make_unique<transport::MemoryRegion>(
            transport->register_memory(fresh->slot->memory(), fresh->slot->activation_bytes()));
      }
      pool[chunk].push_back(std::move(fresh));
      s = pool[chunk].back().get();
    }
    // Never reuse a buffer before its sends have completed.
    if (!s->sends.empty()) {
      transport->wait_all(s->sends, deadline());
      s->sends.clear();
    }
    s->in_use = true;
    active[{mb, chunk}] = s;
    peak_slots = std::max(peak_slots, ++inflight_slots);
    return *s;
  }

  void release(int mb, int chunk) {
    auto it = active.find({mb, chunk});
    CONVEYOR_CHECK(it != active.end(), "release of a slot that is not active");
    it->second->in_use = false;  // its sends are waited for when it is next taken
    active.erase(it);
    --inflight_slots;
  }

  void span(const std::string& name, const char* category, double start_us, double end_us) {
    if (options.record_spans)
      result.spans.push_back({stage, name, category, start_us, end_us - start_us});
  }

  // Posts the receive an action needs, if it comes from another stage.
  void post_receive(const Action& a) {
    const int vs = sched.virtual_stage(stage, a.chunk);
    if (a.op == Op::kForward && vs > 0 && p > 1) {
      SlotState& s = slot(a.microbatch, a.chunk);
      if (s.recv_pending) return;
      s.recv =
          transport->irecv((vs - 1) % p, tag(a.microbatch, a.chunk, transport::Tag::kActivation),
                           s.slot->input(), act_bytes, s.region.get());
      s.recv_pending = true;
    } else if ((a.op == Op::kBackward || a.op == Op::kBackwardInput) && vs < last_vs && p > 1) {
      SlotState& s = slot(a.microbatch, a.chunk);
      if (s.recv_pending) return;
      s.recv = transport->irecv((vs + 1) % p, tag(a.microbatch, a.chunk, transport::Tag::kGradient),
                                s.slot->output_grad(), act_bytes, s.region.get());
      s.recv_pending = true;
    }
  }

  void wait_receive(SlotState& s, const Action& a) {
    if (!s.recv_pending) return;
    const double t0 = wall_us();
    transport->wait(s.recv, deadline());
    s.recv_pending = false;
    span(fmt::format("recv {}{}", a.op == Op::kForward ? "act" : "grad", a.microbatch), "recv", t0,
         wall_us());
  }

  void send(SlotState& s, int peer_vs, const float* data, int mb, int chunk_at_peer,
            transport::Tag::Direction dir) {
    const double t0 = wall_us();
    s.sends.push_back(transport->isend(peer_vs % p, tag(mb, chunk_at_peer, dir), data, act_bytes,
                                       s.region.get()));
    span(fmt::format("send {}{}", dir == transport::Tag::kActivation ? "act" : "grad", mb), "send",
         t0, wall_us());
  }

  void forward(const Action& a) {
    const int vs = sched.virtual_stage(stage, a.chunk);
    model::ModelChunk& chunk = model.chunk(a.chunk);
    SlotState& s = slot(a.microbatch, a.chunk);
    if (chunk.spec().has_embedding || chunk.spec().has_head) {
      (*load)(a.microbatch, s.slot->tokens(), s.slot->targets());
    }
    wait_receive(s, a);
    peak_fb = std::max(peak_fb, ++inflight_fb);
    CONVEYOR_CHECK(inflight_fb <= sched.max_inflight(stage),
                   "stage {} holds {} micro-batches, more than the schedule's bound {}", stage,
                   inflight_fb, sched.max_inflight(stage));
    compute(a, [&] { chunk.forward(*s.slot); });
    if (vs < last_vs) {
      if (p == 1) {  // the next piece is on this stage: hand over locally
        SlotState& next = slot(a.microbatch, a.chunk + 1);
        std::memcpy(next.slot->input(), s.slot->output(), act_bytes);
      } else {
        send(s, vs + 1, s.slot->output(), a.microbatch, (vs + 1) / p, transport::Tag::kActivation);
      }
    } else {
      // Head: remember the loss now; the slot's B may come much later.
    }
  }

  void backward_input(const Action& a, float loss_scale) {
    const int vs = sched.virtual_stage(stage, a.chunk);
    model::ModelChunk& chunk = model.chunk(a.chunk);
    SlotState& s = slot(a.microbatch, a.chunk);
    wait_receive(s, a);
    compute(a, [&] { chunk.backward_input(*s.slot, loss_scale); });
    --inflight_fb;
    if (chunk.spec().has_head) result.losses[a.microbatch] = s.slot->loss();
    if (vs > 0) {
      if (p == 1) {
        SlotState& prev = slot(a.microbatch, a.chunk - 1);
        std::memcpy(prev.slot->output_grad(), s.slot->input_grad(), act_bytes);
      } else {
        send(s, vs - 1, s.slot->input_grad(), a.microbatch, (vs - 1) / p,
             transport::Tag::kGradient);
      }
    }
  }

  void backward_weight(const Action& a) {
    SlotState& s = slot(a.microbatch, a.chunk);
    Action w = a;
    w.op = Op::kBackwardWeight;
    compute(w, [&] { model.chunk(a.chunk).backward_weight(*s.slot); });
    release(a.microbatch, a.chunk);
  }

  template <typename F>
  void compute(const Action& a, F&& f) {
    const double t0 = wall_us();
    f();
    double sleep_ms = 0;
    if (a.op == Op::kForward) sleep_ms = options.sleep_f_ms;
    if (a.op == Op::kBackwardInput) sleep_ms = options.sleep_b_ms;
    if (a.op == Op::kBackwardWeight) sleep_ms = options.sleep_w_ms;
    if (sleep_ms > 0)
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(sleep_ms));
    const double t1 = wall_us();
    result.busy_seconds += (t1 - t0) * 1e-6;
    span(fmt::format("{}{}{}", op_name(a.op), a.microbatch,
                     sched.virtual_stages > 1 ? fmt::format(".{}", a.chunk) : ""),
         "compute", t0, t1);
  }

  StepResult run(int64_t step_index, const BatchLoader& loader, float loss_scale) {
    step = step_index;
    load = &loader;
    result = StepResult{};
    result.losses.assign(sched.microbatches, 0.0f);
    inflight_fb = peak_fb = 0;
    const auto& actions = sched.actions[stage];
    const double t0 = wall_us();
    // Receives for the first actions go out before any compute.
    constexpr size_t kLookahead = 2;
    for (size_t i = 0; i < actions.size(); ++i) {
      if (transport) {
        for (size_t j = i; j < std::min(actions.size(), i + kLookahead); ++j) {
          post_receive(actions[j]);
        }
      }
      const Action& a = actions[i];
      switch (a.op) {
        case Op::kForward:
          forward(a);
          break;
        case Op::kBackward: {  // B then W at once; traced as the two parts
          Action b = a;
          b.op = Op::kBackwardInput;
          backward_input(b, loss_scale);
          backward_weight(a);
          break;
        }
        case Op::kBackwardInput:
          backward_input(a, loss_scale);
          break;
        case Op::kBackwardWeight:
          backward_weight(a);
          break;
      }
    }
    CONVEYOR_CHECK(active.empty(), "stage {}: {} micro-batches still active at the end of a step",
                   stage, active.size());
    if (transport) {
      for (auto& chunk_pool : pool) {
        for (auto& s : chunk_pool) {
          if (!s->sends.empty()) transport->wait_all(s->sends, deadline());
          s->sends.clear();
        }
      }
    }
    result.step_seconds = (wall_us() - t0) * 1e-6;
    result.peak_inflight = peak_fb;
    return std::move(result);
  }
};

Executor::Executor(model::StageModel& model, const Schedule& schedule, int stage,
                   transport::Transport* transport, const ExecutorOptions& options)
    : impl_(std::make_unique<Impl>(model, schedule, stage, transport, options)) {
  CONVEYOR_CHECK((transport != nullptr) == (schedule.stages > 1),
                 "a transport is needed exactly when there is more than one stage");
}

Executor::~Executor() = default;

StepResult Executor::run_step(int64_t step, const BatchLoader& load, float loss_scale) {
  return impl_->run(step, load, loss_scale);
}

}  // namespace conveyor::pipeline
