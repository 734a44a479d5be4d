// SlotPool: the activation slots of one stage, one per (micro-batch, chunk) in flight.
//
// acquire() hands out the first free slot of the chunk, allocating (and registering with the
// transport) a new one only when none is free, so after the first step the pool holds exactly the
// schedule's in-flight peak. Only the slot's wire tensors are registered (Slot::wire_memory()):
// a transport that stages device memory mirrors those, not the whole slot. A released slot is
// handed out again only after every send from it has completed (acquire waits for them, with a
// deadline), so a buffer is never overwritten while the transport may still read it.
//
// Device-direct receives: when the transport writes device memory itself
// (device_memory_direct(), a CUDA-aware UCX), it does so outside the backend's stream, so a
// receive must not be posted into a slot whose last micro-batch's kernels (its W, say) may still
// be queued on the stream. before_transport_writes() drains the stream first when the slot was
// released since the stream was last drained; the executor reports its own drains
// (stream_drained()), so the wait happens only when needed.
//
// Thread safety: none; the executor's thread owns the pool.
#pragma once

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "model/stage_model.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

// One micro-batch's activations on one chunk, plus the transfers that touch them.
struct SlotState {
  std::unique_ptr<model::Slot> slot;
  transport::MemoryRegion region;         // registered once (when there is a transport)
  std::vector<transport::Request> sends;  // this micro-batch's sends (its output, input gradient)
  // The previous micro-batch's sends, still perhaps reading the output or the input gradient:
  // waited for before this micro-batch's first compute writes them.
  std::vector<transport::Request> previous_sends;
  // The receives into this slot, one per direction: with one micro-batch the gradient's
  // receive is posted (one action ahead) before the activation's has been waited for.
  transport::Request recv_activation, recv_gradient;
  bool activation_pending = false, gradient_pending = false;
  bool in_use = false;
  // Released since the stream was last drained: queued kernels may still use it.
  bool stream_may_use = false;
};

class SlotPool {
 public:
  // transport may be null (one stage: no registration, no sends).
  SlotPool(model::StageModel& model, transport::Transport* transport, double wait_seconds);

  // A free slot of `chunk` for micro-batch `mb`. REQUIRES: (mb, chunk) not active.
  SlotState& acquire(int mb, int chunk);
  // The active slot of (mb, chunk); Error(kRuntime) when there is none.
  SlotState& get(int mb, int chunk);
  bool active(int mb, int chunk) const { return active_.contains({mb, chunk}); }
  // Returns the slot to the pool; its sends are waited for before its next micro-batch's F.
  void release(int mb, int chunk);
  // Before the first compute action of the slot's micro-batch (its F): waits for the sends of
  // the slot's previous micro-batch. Returns whether there were any.
  bool before_compute_writes(SlotState& s);
  // Before posting a receive into `s`: with a device-direct transport, drains the backend's
  // stream if kernels of the slot's previous micro-batch may still be queued.
  void before_transport_writes(SlotState& s);
  // The backend's stream was drained (synchronize()): no released slot is in use by it.
  void stream_drained();

  int in_use() const { return static_cast<int>(active_.size()); }
  int peak_in_use() const { return peak_in_use_; }
  int allocated() const;
  // Waits for every send still in flight from any slot (the end of a step).
  void wait_for_sends();

 private:
  Deadline deadline() const { return Deadline::after_seconds(wait_seconds_); }

  model::StageModel& model_;
  transport::Transport* transport_;
  double wait_seconds_;
  bool device_direct_;  // device memory, written by the transport outside the stream
  std::vector<std::vector<std::unique_ptr<SlotState>>> slots_;  // [chunk] -> every slot
  std::map<std::pair<int, int>, SlotState*> active_;            // (mb, chunk) -> slot
  int peak_in_use_ = 0;
};

}  // namespace conveyor::pipeline
