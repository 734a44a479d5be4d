#include "pipeline/generate.h"

#include <xxhash.h>

#include <cstring>
#include <vector>

#include "common/error.h"
#include "model/chunk.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

namespace {
constexpr double kTimeoutSeconds = 600;
}

int sample_index(const float* probs, int n, double u) {
  double cdf = 0;
  for (int i = 0; i < n; ++i) {
    cdf += probs[i];
    if (u < cdf) return i;
  }
  return n - 1;
}

std::string generate(model::StageModel& m, const PipelinePlace& place, const std::string& prompt,
                     int count, uint64_t seed) {
  const auto& config = m.config();
  const int T = config.seq, V = config.vocab, p = place.stages;
  const int pieces = p * m.num_chunks();
  const size_t act_bytes = size_t(T) * config.dim * sizeof(float);
  // Batch-of-one chunks over this stage's parameters.
  std::vector<std::unique_ptr<model::ModelChunk>> chunks;
  std::vector<std::unique_ptr<model::Slot>> slots;
  for (int c = 0; c < m.num_chunks(); ++c) {
    chunks.push_back(std::make_unique<model::ModelChunk>(config, m.chunk(c).spec(), m.store(), 1));
    slots.push_back(chunks.back()->make_slot());
  }
  std::vector<int32_t> context;
  for (unsigned char ch : prompt) context.push_back(V == 256 ? ch : 0);
  if (context.empty()) context.push_back(V == 256 ? '\n' : 0);

  std::string out;
  for (int i = 0; i < count; ++i) {
    // The last T tokens; positions after the context are padding the causal mask ignores.
    const size_t start = context.size() > size_t(T) ? context.size() - T : 0;
    const int len = static_cast<int>(context.size() - start);
    int next = 0;
    for (int vs = 0; vs < pieces; ++vs) {
      if (vs % p != place.stage) continue;
      const int c = vs / p;
      model::Slot& slot = *slots[c];
      const transport::Tag tag{static_cast<uint32_t>(i), static_cast<uint16_t>(vs), 0,
                               transport::Tag::kControl};
      if (vs == 0) {
        for (int t = 0; t < T; ++t) slot.tokens()[t] = t < len ? context[start + t] : 0;
      } else if (p == 1) {
        std::memcpy(slot.input(), slots[c - 1]->output(), act_bytes);
      } else {
        auto r = place.transport->irecv((vs - 1) % p, tag, slot.input(), act_bytes);
        place.transport->wait(r, Deadline::after_seconds(kTimeoutSeconds));
      }
      chunks[c]->forward(slot);
      if (vs + 1 < pieces && p > 1) {
        const transport::Tag out_tag{static_cast<uint32_t>(i), static_cast<uint16_t>(vs + 1), 0,
                                     transport::Tag::kControl};
        auto r = place.transport->isend((vs + 1) % p, out_tag, slot.output(), act_bytes);
        place.transport->wait(r, Deadline::after_seconds(kTimeoutSeconds));
      }
      if (vs + 1 == pieces) {
        const float* probs = slot.probs() + size_t(len - 1) * V;
        const uint64_t key[2] = {seed, static_cast<uint64_t>(i)};
        const double u = static_cast<double>(XXH3_64bits(key, sizeof key) >> 11) * 0x1.0p-53;
        next = sample_index(probs, V, u);
      }
    }
    if (p > 1) {  // the head's stage tells everyone the token
      std::vector<uint8_t> bytes(sizeof(int32_t));
      std::memcpy(bytes.data(), &next, sizeof next);
      place.transport->broadcast(bytes, (pieces - 1) % p, Deadline::after_seconds(kTimeoutSeconds));
      std::memcpy(&next, bytes.data(), sizeof next);
    }
    context.push_back(next);
    if (V == 256) {
      out.push_back(static_cast<char>(next));
    } else {
      if (!out.empty()) out += ' ';
      out += std::to_string(next);
    }
  }
  return out;
}

}  // namespace conveyor::pipeline
