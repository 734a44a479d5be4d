#include "pipeline/runtime/slot_pool.h"

#include <algorithm>

#include "common/error.h"

namespace conveyor::pipeline {

SlotPool::SlotPool(model::StageModel& model, transport::Transport* transport, double wait_seconds)
    : model_(model),
      transport_(transport),
      wait_seconds_(wait_seconds),
      device_direct_(transport != nullptr && transport->device_memory_direct() &&
                     model.backend().memory_type() == kernels::MemoryType::kDevice) {
  slots_.resize(model.num_chunks());
}

SlotState& SlotPool::acquire(int mb, int chunk) {
  CONVEYOR_CHECK(!active(mb, chunk), "slot of micro-batch {} chunk {} acquired twice", mb, chunk);
  // A free slot whose sends have completed, else any free one.
  SlotState* s = nullptr;
  for (auto& candidate : slots_[chunk]) {
    if (candidate->in_use) continue;
    const bool sent = std::all_of(candidate->sends.begin(), candidate->sends.end(),
                                  [](const transport::Request& r) { return r.done(); });
    if (!s || sent) s = candidate.get();
    if (sent) break;
  }
  if (!s) {
    auto fresh = std::make_unique<SlotState>();
    fresh->slot = model_.chunk(chunk).make_slot();
    if (transport_) {
      fresh->region = transport_->register_memory(
          fresh->slot->wire_memory(), fresh->slot->wire_bytes(), model_.backend().memory_type());
    }
    s = fresh.get();
    slots_[chunk].push_back(std::move(fresh));
  }
  // Its last micro-batch's sends may still read its output or input gradient: the new one's
  // first compute waits for them (before_compute_writes); receives may go in already.
  for (auto& r : s->sends) s->previous_sends.push_back(std::move(r));
  s->sends.clear();
  s->in_use = true;
  active_[{mb, chunk}] = s;
  peak_in_use_ = std::max(peak_in_use_, in_use());
  return *s;
}

SlotState& SlotPool::get(int mb, int chunk) {
  auto it = active_.find({mb, chunk});
  CONVEYOR_CHECK(it != active_.end(), "micro-batch {} chunk {} has no active slot", mb, chunk);
  return *it->second;
}

void SlotPool::release(int mb, int chunk) {
  auto it = active_.find({mb, chunk});
  CONVEYOR_CHECK(it != active_.end(), "release of micro-batch {} chunk {}: not active", mb, chunk);
  CONVEYOR_CHECK(!it->second->activation_pending && !it->second->gradient_pending,
                 "release of micro-batch {} chunk {} with a receive "
                 "still pending",
                 mb, chunk);
  it->second->in_use = false;
  it->second->stream_may_use = device_direct_;
  active_.erase(it);
}

bool SlotPool::before_compute_writes(SlotState& s) {
  if (s.previous_sends.empty()) return false;
  transport_->wait_all(s.previous_sends, deadline());
  s.previous_sends.clear();
  return true;
}

void SlotPool::before_transport_writes(SlotState& s) {
  if (!s.stream_may_use) return;
  model_.backend().synchronize();
  stream_drained();
}

void SlotPool::stream_drained() {
  for (auto& chunk : slots_)
    for (auto& s : chunk) s->stream_may_use = false;
}

int SlotPool::allocated() const {
  int n = 0;
  for (const auto& chunk : slots_) n += static_cast<int>(chunk.size());
  return n;
}

void SlotPool::wait_for_sends() {
  for (auto& chunk : slots_) {
    for (auto& s : chunk) {
      for (auto* sends : {&s->previous_sends, &s->sends}) {
        if (!sends->empty()) transport_->wait_all(*sends, deadline());
        sends->clear();
      }
    }
  }
}

}  // namespace conveyor::pipeline
