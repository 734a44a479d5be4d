#include "pipeline/runtime/executor.h"

#include <chrono>
#include <map>

#include <fmt/format.h>

#include "common/error.h"
#include "pipeline/runtime/message_tag.h"
#include "pipeline/runtime/slot_pool.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

namespace {

bool is_receive(CommKind k) {
  return k == CommKind::kRecvActivation || k == CommKind::kRecvGradient;
}
bool is_activation(CommKind k) {
  return k == CommKind::kRecvActivation || k == CommKind::kSendActivation;
}

// A receive posted ahead of its step may hold one slot more than the schedule's bound (the
// activation arriving for the next F while the current micro-batches are between F and W).
constexpr int kSlotsForReceivesAhead = 1;

}  // namespace

struct Executor::Impl {
  // One step of the program with its peer resolved through the topology.
  struct PlannedStep {
    StageStep step;
    int peer_rank = -1;  // comms: the rank holding the peer virtual stage
    bool local = false;  // comms: the peer is this rank (a copy between its own chunks)
    int peer_chunk = 0;  // comms: the peer virtual stage's chunk on its rank
  };

  model::StageModel& model;
  const Schedule& sched;
  int rank, stage;
  int bound;  // sched.max_inflight(stage): the activations this stage may hold
  // The trace row: one per stage, or with several replicas one per rank, named for it.
  int row;
  std::string row_name;
  transport::Transport* transport;
  ExecutorOptions options;
  size_t act_bytes;  // N*C floats
  // The backend keeps its tensors in device memory: batches are filled on the host and
  // copied in, and the stream is drained before the transport reads an activation.
  bool device;
  std::vector<int32_t> host_tokens, host_targets;
  std::vector<PlannedStep> plan;
  SlotPool pool;

  int64_t step = 0;
  const BatchLoader* load = nullptr;
  float loss_scale = 0;
  // Receives posted ahead (see executor.h). held[i]: slots the program itself holds while
  // step i runs (from the first use of a micro-batch's slot on a chunk, to its W); ahead[i]:
  // slots that receives posted early hold in addition while step i runs; forward_at[i]: for a
  // gradient receive, the step of its micro-batch's F on that chunk.
  std::vector<int> held, ahead, forward_at;
  std::vector<size_t> receives;  // plan indices of remote receives, in plan order
  std::vector<size_t> unposted;  // this step's receives not yet posted, in plan order
  // With record_spans: this step's transfers with other ranks, each with when it was posted
  // and its span's name, traced once the step has waited for all of them.
  struct Transfer {
    transport::Request request;
    double posted_us;
    std::string name;
  };
  std::vector<Transfer> transfers;
  int inflight = 0;
  StepResult result;
  std::vector<int> weight_actions;       // [chunk] W actions per step (one per micro-batch)
  std::vector<int> weight_actions_done;  // [chunk] this step's so far

  Impl(model::StageModel& m, const Schedule& s, const Topology& topology, int r,
       transport::Transport* t, const ExecutorOptions& o)
      : model(m),
        sched(s),
        rank(r),
        stage(topology.place(r).stage),
        bound(s.max_inflight(stage)),
        row(topology.replicas > 1 ? r : stage),
        row_name(topology.replicas > 1
                     ? fmt::format("replica {} stage {}", topology.place(r).replica, stage)
                     : std::string()),
        transport(t),
        options(o),
        act_bytes(size_t(m.micro_batch_size()) * m.config().seq * m.config().dim * sizeof(float)),
        device(m.backend().memory_type() == kernels::MemoryType::kDevice),
        pool(m, t, o.wait_timeout_s) {
    const int replica = topology.place(r).replica;
    for (const StageStep& st : stage_program(s, stage)) {
      PlannedStep ps{st};
      if (!st.is_compute) {
        ps.peer_rank = topology.rank_of_virtual_stage(replica, st.comm.peer_virtual_stage);
        ps.local = ps.peer_rank == rank;
        ps.peer_chunk = topology.chunk_of(st.comm.peer_virtual_stage);
        CONVEYOR_CHECK(ps.local || transport, "stage {} needs a transport to reach rank {}", stage,
                       ps.peer_rank);
      }
      plan.push_back(ps);
      if (st.is_compute && st.action.op == Op::kBackwardWeight) {
        if (weight_actions.size() <= size_t(st.action.chunk))
          weight_actions.resize(size_t(st.action.chunk) + 1, 0);
        ++weight_actions[size_t(st.action.chunk)];
      }
    }
    plan_slot_use();
  }

  // held[] and forward_at[] from the plan: where each (micro-batch, chunk) slot is first used
  // (a remote activation receive, a local copy into it, or its F) and where its W frees it.
  void plan_slot_use() {
    held.assign(plan.size(), 0);
    forward_at.assign(plan.size(), -1);
    std::map<std::pair<int, int>, int> first_use, forward;
    for (size_t i = 0; i < plan.size(); ++i) {
      const PlannedStep& ps = plan[i];
      if (ps.step.is_compute) {
        const Action& a = ps.step.action;
        const std::pair key{a.microbatch, a.chunk};
        if (a.op == Op::kForward) {
          first_use.try_emplace(key, int(i));
          forward[key] = int(i);
        } else if (a.op == Op::kBackwardWeight) {
          for (int k = first_use.at(key); k <= int(i); ++k) ++held[size_t(k)];
        }
        continue;
      }
      const Comm& c = ps.step.comm;
      if (ps.local && !is_receive(c.kind) && is_activation(c.kind))
        first_use.try_emplace({c.microbatch, ps.peer_chunk}, int(i));
      if (ps.local || !is_receive(c.kind)) continue;
      receives.push_back(i);
      if (c.kind == CommKind::kRecvActivation)
        first_use.try_emplace({c.microbatch, ps.step.action.chunk}, int(i));
      else
        forward_at[i] = forward.at({c.microbatch, ps.step.action.chunk});
    }
  }

  Deadline deadline() const { return Deadline::after_seconds(options.wait_timeout_s); }

  const transport::MemoryRegion* region(SlotState& s) const {
    return s.region.valid() ? &s.region : nullptr;
  }

  // The slot of (mb, chunk): the active one, or a fresh one for its first use this step.
  SlotState& slot_for(int mb, int chunk) {
    return pool.active(mb, chunk) ? pool.get(mb, chunk) : pool.acquire(mb, chunk);
  }

  void span(const std::string& name, const char* category, double start_us, double end_us) {
    if (options.record_spans)
      result.spans.push_back({row, name, category, start_us, end_us - start_us, row_name});
  }

  transport::Tag tag(CommKind kind, int mb, int receiving_vs) const {
    return encode(
        MessageTag{is_activation(kind) ? MessageKind::kActivation : MessageKind::kGradient, step,
                   mb, receiving_vs});
  }

  // Before step `now` runs: posts every receive that may be posted now (see executor.h). A
  // gradient's once its micro-batch's F has run (its slot is held anyway); an activation's, in
  // plan order, while the slot it takes from now until its own step keeps the stage within the
  // schedule's bound plus kSlotsForReceivesAhead at every step in between.
  void post_receives(size_t now) {
    const int limit = bound + kSlotsForReceivesAhead;
    bool activations_wait = false;  // an earlier activation receive could not be posted yet
    std::erase_if(unposted, [&](size_t r) {
      const bool act = plan[r].step.comm.kind == CommKind::kRecvActivation;
      if (!act) {
        if (size_t(forward_at[r]) >= now) return false;
      } else {
        if (activations_wait) return false;
        for (size_t i = now; i < r; ++i) {
          if (held[i] + ahead[i] + 1 > limit) {
            activations_wait = true;
            return false;
          }
        }
        for (size_t i = now; i < r; ++i) ++ahead[i];
      }
      post_receive(plan[r]);
      return true;
    });
  }

  void post_receive(const PlannedStep& ps) {
    const Comm& c = ps.step.comm;
    SlotState& s = slot_for(c.microbatch, ps.step.action.chunk);
    pool.before_transport_writes(s);
    const bool act = c.kind == CommKind::kRecvActivation;
    float* into = act ? s.slot->input() : s.slot->output_grad();
    const double posted = trace_clock_us();
    (act ? s.recv_activation : s.recv_gradient) =
        transport->irecv(ps.peer_rank, tag(c.kind, c.microbatch, c.virtual_stage), into, act_bytes,
                         region(s), model.backend().memory_type());
    (act ? s.activation_pending : s.gradient_pending) = true;
    if (tracing_transfers())
      transfers.push_back({act ? s.recv_activation : s.recv_gradient, posted,
                           fmt::format("recv {}{} from rank {}", act ? "act" : "grad", c.microbatch,
                                       ps.peer_rank)});
  }

  bool tracing_transfers() const { return options.record_spans && options.transfer_row >= 0; }

  // The transfer row: every transfer of the step from its post to its completion.
  void trace_transfers() {
    for (const Transfer& t : transfers) {
      const double end = trace_clock_us(t.request.completed_at());
      result.spans.push_back({options.transfer_row, t.name, "transfer", t.posted_us,
                              std::max(0.0, end - t.posted_us), options.transfer_row_name});
    }
    transfers.clear();
  }

  void receive(const PlannedStep& ps) {
    const Comm& c = ps.step.comm;
    SlotState& s = slot_for(c.microbatch, ps.step.action.chunk);
    if (ps.local) return;  // the matching send on this rank already copied the data in
    const double t0 = trace_clock_us();
    const bool act = c.kind == CommKind::kRecvActivation;
    transport->wait(act ? s.recv_activation : s.recv_gradient, deadline());
    (act ? s.activation_pending : s.gradient_pending) = false;
    span(fmt::format("recv {}{}", is_activation(c.kind) ? "act" : "grad", c.microbatch), "recv", t0,
         trace_clock_us());
  }

  void send(const PlannedStep& ps) {
    const Comm& c = ps.step.comm;
    SlotState& s = pool.get(c.microbatch, ps.step.action.chunk);
    const bool act = c.kind == CommKind::kSendActivation;
    const float* data = act ? s.slot->output() : s.slot->input_grad();
    if (ps.local) {
      SlotState& peer = slot_for(c.microbatch, ps.peer_chunk);
      model.backend().copy(act ? peer.slot->input() : peer.slot->output_grad(), data, act_bytes);
      return;
    }
    const double t0 = trace_clock_us();
    if (device) drain_stream();              // the transport reads what the stream wrote
    const double posted = trace_clock_us();  // before: the message may arrive within isend
    s.sends.push_back(transport->isend(ps.peer_rank,
                                       tag(c.kind, c.microbatch, c.peer_virtual_stage), data,
                                       act_bytes, region(s), model.backend().memory_type()));
    if (tracing_transfers())
      transfers.push_back(
          {s.sends.back(), posted,
           fmt::format("send {}{} to rank {}", act ? "act" : "grad", c.microbatch, ps.peer_rank)});
    span(fmt::format("send {}{}", act ? "act" : "grad", c.microbatch), "send", t0,
         trace_clock_us());
  }

  void drain_stream() {
    model.backend().synchronize();
    pool.stream_drained();
  }

  // The loader writes host memory: straight into a host slot, through host vectors and
  // from_host into a device one. Tokens and targets are checked here, on the host (the data
  // set checked them when it opened; this guards the loader), so a GPU never reads outside
  // the embedding and never has to report a bad target, which would cost it a wait.
  void load_batch(int mb, model::Slot& slot, const model::ChunkSpec& spec) {
    const size_t n = size_t(model.micro_batch_size()) * model.config().seq;
    int32_t* tokens = slot.tokens();
    int32_t* targets = slot.targets();
    if (device) {
      host_tokens.resize(n);
      host_targets.resize(n);
      tokens = host_tokens.data();
      targets = host_targets.data();
    }
    (*load)(mb, tokens, targets);
    if (spec.has_embedding) check_ids("token", mb, tokens, n);
    if (spec.has_head) check_ids("target", mb, targets, n);
    if (!device) return;  // each copy in is a wait for the device: only what the chunk reads
    if (spec.has_embedding) model.backend().from_host(slot.tokens(), tokens, n * sizeof(int32_t));
    if (spec.has_head) model.backend().from_host(slot.targets(), targets, n * sizeof(int32_t));
  }

  void check_ids(const char* what, int mb, const int32_t* ids, size_t n) const {
    const int vocab = model.config().vocab;
    for (size_t i = 0; i < n; ++i) {
      if (ids[i] < 0 || ids[i] >= vocab)
        throw Error(ErrorKind::kRuntime,
                    fmt::format("step {} micro-batch {}: {} {} at position {} is outside the "
                                "vocabulary [0, {})",
                                step, mb, what, ids[i], i, vocab));
    }
  }

  template <typename F>
  void timed(const Action& a, F&& f) {
    const double t0 = trace_clock_us();
    f();
    if (options.after_compute) options.after_compute(a);
    const double t1 = trace_clock_us();
    result.busy_seconds += (t1 - t0) * 1e-6;
    span(fmt::format("{}{}{}", op_name(a.op), a.microbatch,
                     sched.virtual_stages > 1 ? fmt::format(".{}", a.chunk) : ""),
         "compute", t0, t1);
  }

  void compute(const Action& a) {
    model::ModelChunk& chunk = model.chunk(a.chunk);
    switch (a.op) {
      case Op::kForward: {
        SlotState& s = slot_for(a.microbatch, a.chunk);
        const double t0 = trace_clock_us();
        if (pool.before_compute_writes(s))
          span(fmt::format("wait sends from slot of {}", a.microbatch), "send", t0,
               trace_clock_us());
        if (chunk.spec().has_embedding || chunk.spec().has_head)
          load_batch(a.microbatch, *s.slot, chunk.spec());
        ++inflight;
        result.peak_inflight = std::max(result.peak_inflight, inflight);
        CONVEYOR_CHECK(inflight <= bound,
                       "stage {} holds {} micro-batches, more than the schedule's bound {}", stage,
                       inflight, bound);
        timed(a, [&] { chunk.forward(*s.slot); });
        break;
      }
      case Op::kBackwardInput: {
        SlotState& s = pool.get(a.microbatch, a.chunk);
        timed(a, [&] { chunk.backward_input(*s.slot, loss_scale); });
        if (chunk.spec().has_head) result.losses[a.microbatch] = s.slot->loss();
        break;
      }
      case Op::kBackwardWeight: {
        SlotState& s = pool.get(a.microbatch, a.chunk);
        const bool last = ++weight_actions_done[size_t(a.chunk)] == weight_actions[size_t(a.chunk)];
        std::function<void(int)> done;  // on the step's last W of the chunk
        if (last && options.after_chunk_gradients) {
          done = [&](int first_done_param) {
            options.after_chunk_gradients(a.chunk, first_done_param);
          };
        }
        timed(a, [&] { chunk.backward_weight(*s.slot, done); });
        --inflight;
        pool.release(a.microbatch, a.chunk);
        if (done) done(0);
        break;
      }
      case Op::kBackward:
        CONVEYOR_CHECK(false, "stage_program lowers BW into B and W");
    }
  }

  StepResult run(int64_t step_index, const BatchLoader& loader, float scale) {
    step = step_index;
    load = &loader;
    loss_scale = scale;
    result = StepResult{};
    result.losses.assign(sched.microbatches, 0.0f);
    inflight = 0;
    unposted = receives;
    transfers.clear();
    ahead.assign(plan.size(), 0);
    weight_actions_done.assign(weight_actions.size(), 0);
    const double t0 = trace_clock_us();
    for (size_t i = 0; i < plan.size(); ++i) {
      const PlannedStep& ps = plan[i];
      if (transport) post_receives(i);
      if (ps.step.is_compute) {
        compute(ps.step.action);
      } else if (is_receive(ps.step.comm.kind)) {
        receive(ps);
      } else {
        send(ps);
      }
    }
    // Slots are held from F to W, plus at most one for receives posted ahead.
    CONVEYOR_CHECK(pool.peak_in_use() <= bound + kSlotsForReceivesAhead,
                   "stage {} used {} activation slots, more than the schedule's bound {} + {}",
                   stage, pool.peak_in_use(), bound, kSlotsForReceivesAhead);
    CONVEYOR_CHECK(pool.in_use() == 0,
                   "stage {}: {} micro-batches still hold a slot at the end of a step", stage,
                   pool.in_use());
    if (transport) pool.wait_for_sends();
    if (tracing_transfers()) trace_transfers();
    result.step_seconds = (trace_clock_us() - t0) * 1e-6;
    result.peak_slots = pool.peak_in_use();
    return std::move(result);
  }
};

Executor::Executor(model::StageModel& model, const Schedule& schedule, const Topology& topology,
                   int rank, transport::Transport* transport, const ExecutorOptions& options)
    : impl_(std::make_unique<Impl>(model, schedule, topology, rank, transport, options)) {}

Executor::~Executor() = default;

StepResult Executor::run_step(int64_t step, const BatchLoader& load, float loss_scale) {
  return impl_->run(step, load, loss_scale);
}

}  // namespace conveyor::pipeline
