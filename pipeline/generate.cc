#include "pipeline/generate.h"

#include <xxhash.h>

#include <vector>

#include "common/error.h"
#include "model/chunk.h"

namespace conveyor::pipeline {

int sample_index(const float* probs, int n, double u) {
  double cdf = 0;
  for (int i = 0; i < n; ++i) {
    cdf += probs[i];
    if (u < cdf) return i;
  }
  return n - 1;
}

std::string generate(model::StageModel& m, const std::string& prompt, int count, uint64_t seed) {
  CONVEYOR_CHECK(m.holds_embedding() && m.holds_head(), "generate needs the whole model");
  const auto& config = m.config();
  const int T = config.seq, V = config.vocab;
  // Batch-of-one chunks over the same parameters.
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
    int32_t* tokens = slots[0]->tokens();
    for (int t = 0; t < T; ++t) tokens[t] = t < len ? context[start + t] : 0;
    for (size_t c = 0; c < chunks.size(); ++c) {
      if (c > 0) {
        std::copy(slots[c - 1]->output(), slots[c - 1]->output() + size_t(T) * config.dim,
                  slots[c]->input());
      }
      chunks[c]->forward(*slots[c]);
    }
    const float* probs = slots.back()->probs() + size_t(len - 1) * V;
    const uint64_t key[2] = {seed, static_cast<uint64_t>(i)};
    const double u = static_cast<double>(XXH3_64bits(key, sizeof key) >> 11) * 0x1.0p-53;
    const int next = sample_index(probs, V, u);
    context.push_back(next);
    if (V == 256) out.push_back(static_cast<char>(next));
    else out += (out.empty() ? "" : " ") + std::to_string(next);
  }
  return out;
}

}  // namespace conveyor::pipeline
