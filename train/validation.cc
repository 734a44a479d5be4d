#include "train/validation.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <memory>
#include <vector>

#include "checkpoint/fault_injection.h"
#include "common/clock.h"
#include "data/sampler.h"
#include "infer/forward_pass.h"
#include "pipeline/runtime/stop_request.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

namespace {

// This rank's chunks for batches of `rows` windows: the model's own chunks when `rows` is the
// micro-batch size, else chunks of that size over the same parameters (kept in `owned`).
ForwardChunks chunks_for(model::StageModel& m, int rows,
                         std::vector<std::unique_ptr<model::ModelChunk>>& owned,
                         std::vector<std::unique_ptr<model::Slot>>& slots) {
  ForwardChunks mine{&m.backend(), {}, {}, size_t(rows) * m.config().seq * m.config().dim * 4};
  for (int c = 0; c < m.num_chunks(); ++c) {
    model::ModelChunk* chunk = &m.chunk(c);
    if (rows != m.micro_batch_size()) {
      owned.push_back(
          std::make_unique<model::ModelChunk>(m.config(), chunk->spec(), m.store(), rows));
      chunk = owned.back().get();
    }
    slots.push_back(chunk->make_slot());
    mine.chunks.push_back(chunk);
    mine.slots.push_back(slots.back().get());
  }
  return mine;
}

}  // namespace

std::optional<double> validation_loss(model::StageModel& m, const PipelinePlace& place,
                                      const data::Dataset* data, int64_t windows, int64_t step) {
  const int T = m.config().seq;
  const int batch = m.micro_batch_size();
  kernels::Backend& k = m.backend();
  std::vector<std::unique_ptr<model::ModelChunk>> owned;
  std::vector<std::unique_ptr<model::Slot>> full_slots, rest_slots;
  const ForwardChunks full = chunks_for(m, batch, owned, full_slots);
  const int rest = static_cast<int>(windows % batch);
  ForwardChunks last;
  if (rest > 0) last = chunks_for(m, rest, owned, rest_slots);

  std::vector<int32_t> tokens, targets;
  auto fill = [&](int64_t first, int n) {
    tokens.resize(size_t(n) * T);
    targets.resize(size_t(n) * T);
    for (int w = 0; w < n; ++w) {
      data::eval_window(*data, first + w, T, tokens.data() + size_t(w) * T,
                        targets.data() + size_t(w) * T);
    }
  };
  const int stage = place.topology.place(place.rank).stage;
  if (checkpoint::fault::armed(checkpoint::fault::kStopInValidation, step + 1, stage))
    ::raise(SIGTERM);   // TEST HOOK (fault_injection.h): a preemption mid-validation
  double loss_sum = 0;  // sum over windows of the window's mean loss, in window order
  int64_t index = 0;
  for (int64_t first = 0; first < windows; first += batch, ++index) {
    if (stop_requested_anywhere(place.transport)) return std::nullopt;
    const int n = static_cast<int>(std::min<int64_t>(batch, windows - first));
    const ForwardChunks& mine = n == batch ? full : last;
    auto load = [&](model::Slot& slot) {
      fill(first, n);
      k.from_host(slot.tokens(), tokens.data(), tokens.size() * sizeof(int32_t));
    };
    auto score = [&](model::Slot& slot) { loss_sum += double(slot.loss()) * n; };
    // The head needs the targets before its forward: they go in with the first chunk's
    // tokens (one rank) or ahead of the walk (the head's rank).
    if (m.holds_head()) {
      fill(first, n);
      k.from_host(mine.slots[m.num_chunks() - 1]->targets(), targets.data(),
                  targets.size() * sizeof(int32_t));
    }
    const MessageTag tag{MessageKind::kValidation, step, int(index % kMaxTagMicrobatches), 0};
    forward_through_pipeline(place, mine, tag, load, score);
  }
  double loss = loss_sum / double(windows);
  if (place.transport) {  // the head's rank tells everyone (replica 0's: every replica
                          // scores the same weights, and a collective has one root)
    std::vector<uint8_t> bytes(sizeof loss);
    std::memcpy(bytes.data(), &loss, sizeof loss);
    place.transport->broadcast(bytes, place.topology.reporter_rank(),
                               Deadline::after_seconds(kPeerWaitSeconds));
    std::memcpy(&loss, bytes.data(), sizeof loss);
  }
  return loss;
}

}  // namespace conveyor::pipeline
