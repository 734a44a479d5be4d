#include "infer/generate.h"

#include <xxhash.h>
#include <csignal>

#include <cstring>
#include <vector>

#include "checkpoint/fault_injection.h"
#include "common/clock.h"
#include "common/error.h"
#include "infer/forward_pass.h"
#include "model/chunk.h"
#include "pipeline/runtime/message_tag.h"
#include "pipeline/runtime/stop_request.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

int sample_index(const float* probs, int n, double u) {
  double cdf = 0;
  for (int i = 0; i < n; ++i) {
    cdf += probs[i];
    if (u < cdf) return i;
  }
  return n - 1;
}

std::vector<int32_t> generate_tokens(model::StageModel& m, const PipelinePlace& place,
                                     std::vector<int32_t> context, int count, uint64_t seed) {
  CONVEYOR_REQUIRE(!context.empty(), "generation needs a prompt of at least one token");
  const auto& config = m.config();
  const Topology& topo = place.topology;
  const int T = config.seq, V = config.vocab;
  kernels::Backend& k = m.backend();
  // Batch-of-one chunks over this stage's parameters.
  std::vector<std::unique_ptr<model::ModelChunk>> chunks;
  std::vector<std::unique_ptr<model::Slot>> slots;
  ForwardChunks mine{&k, {}, {}, size_t(T) * config.dim * sizeof(float)};
  for (int c = 0; c < m.num_chunks(); ++c) {
    chunks.push_back(std::make_unique<model::ModelChunk>(config, m.chunk(c).spec(), m.store(), 1));
    slots.push_back(chunks.back()->make_slot());
    mine.chunks.push_back(chunks.back().get());
    mine.slots.push_back(slots.back().get());
  }
  std::vector<int32_t> window(T);
  std::vector<float> probs(V);
  std::vector<int32_t> out;
  const int stage = topo.place(place.rank).stage;
  for (int i = 0; i < count; ++i) {
    if (checkpoint::fault::armed(checkpoint::fault::kStopInSample, i, stage))
      ::raise(SIGTERM);  // TEST HOOK (fault_injection.h): a preemption mid-generation
    if (stop_requested_anywhere(place.transport)) break;
    // The last T tokens; positions after the context are padding the causal mask ignores.
    const size_t start = context.size() > size_t(T) ? context.size() - T : 0;
    const int len = static_cast<int>(context.size() - start);
    int next = 0;
    auto load = [&](model::Slot& slot) {
      for (int t = 0; t < T; ++t) window[t] = t < len ? context[start + t] : 0;
      k.from_host(slot.tokens(), window.data(), window.size() * sizeof(int32_t));
    };
    auto draw = [&](model::Slot& slot) {
      k.to_host(probs.data(), slot.probs() + size_t(len - 1) * V, probs.size() * sizeof(float));
      k.synchronize();
      const uint64_t key[2] = {seed, static_cast<uint64_t>(i)};
      const double u = static_cast<double>(XXH3_64bits(key, sizeof key) >> 11) * 0x1.0p-53;
      next = sample_index(probs.data(), V, u);
    };
    forward_through_pipeline(place, mine, MessageTag{MessageKind::kGeneration, i, 0, 0}, load,
                             draw);
    if (place.transport) {  // the head's rank tells everyone the token (replica 0's: every
                            // replica draws the same one, and a collective has one root)
      std::vector<uint8_t> bytes(sizeof(int32_t));
      std::memcpy(bytes.data(), &next, sizeof next);
      place.transport->broadcast(bytes, topo.reporter_rank(),
                                 Deadline::after_seconds(kPeerWaitSeconds));
      std::memcpy(&next, bytes.data(), sizeof next);
    }
    context.push_back(next);
    out.push_back(next);
  }
  return out;
}

std::string generate(model::StageModel& m, const PipelinePlace& place, const std::string& prompt,
                     int count, uint64_t seed) {
  const bool bytes = m.config().vocab == 256;
  std::vector<int32_t> context;
  for (unsigned char ch : prompt) context.push_back(bytes ? ch : 0);
  if (context.empty()) context.push_back(bytes ? '\n' : 0);
  std::string out;
  for (int32_t id : generate_tokens(m, place, std::move(context), count, seed)) {
    if (bytes) {
      out.push_back(static_cast<char>(id));
    } else {
      if (!out.empty()) out += ' ';
      out += std::to_string(id);
    }
  }
  return out;
}

}  // namespace conveyor::pipeline
