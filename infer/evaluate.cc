#include "infer/evaluate.h"

#include <algorithm>

#include "common/error.h"
#include "data/dataset.h"
#include "data/sampler.h"
#include "interop/weight_source.h"
#include "kernels/backend.h"
#include "model/stage_model.h"

namespace conveyor::pipeline {

namespace {

// Windows scored per forward pass; a last, smaller group uses a second chunk of its size.
constexpr int kBatch = 16;

}  // namespace

EvalResult evaluate(const std::string& ckpt, const std::string& data_path, int64_t max_windows) {
  auto source = interop::WeightSource::open(ckpt);  // a checkpoint, or an HF or llm.c model
  const auto config = source->config();
  config.validate();

  const auto data = data::Dataset::open(data_path, config.vocab, data::kCheckpointVocab);
  const size_t available = data::num_eval_windows(data, config.seq);
  CONVEYOR_REQUIRE(available > 0,
                   "--data {} has {} tokens, fewer than one window of {} + 1 (the checkpoint's "
                   "--seq); use a longer file",
                   data_path, data.size(), config.seq);
  const int64_t windows =
      max_windows > 0 ? std::min<int64_t>(max_windows, available) : static_cast<int64_t>(available);

  const auto whole = model::chunk_specs({config.layers});
  auto backend = kernels::make_backend({});  // the CPU reference
  kernels::Backend& k = *backend;
  model::StageModel model(k, config, whole, kBatch);
  auto& store = model.store();
  std::vector<float> host;  // read on the host, then copied to the backend's memory
  for (size_t i = 0; i < store.specs().size(); ++i) {
    const auto& spec = store.specs()[i];
    host.resize(spec.numel());
    source->read(spec.name, host);
    k.from_host(store.param(static_cast<int>(i)).data(), host.data(), host.size() * sizeof(float));
  }
  const int64_t rest = windows % kBatch;
  std::unique_ptr<model::ModelChunk> small;
  if (rest > 0) small = std::make_unique<model::ModelChunk>(config, whole[0], store, rest);

  double loss_sum = 0;  // sum over windows of the window's mean loss, in window order
  for (int64_t first = 0; first < windows; first += kBatch) {
    const int n = static_cast<int>(std::min<int64_t>(kBatch, windows - first));
    model::ModelChunk& chunk = n == kBatch ? model.chunk(0) : *small;
    auto slot = chunk.make_slot();
    const size_t rows = size_t(n) * config.seq;
    std::vector<int32_t> tokens(rows), targets(rows);
    for (int w = 0; w < n; ++w) {
      data::eval_window(data, first + w, config.seq, tokens.data() + size_t(w) * config.seq,
                        targets.data() + size_t(w) * config.seq);
    }
    k.from_host(slot->tokens(), tokens.data(), rows * sizeof(int32_t));
    k.from_host(slot->targets(), targets.data(), rows * sizeof(int32_t));
    chunk.forward(*slot);
    loss_sum += double(slot->loss()) * n;  // the slot's loss is the mean over its n windows
  }
  return {loss_sum / windows, windows, windows * config.seq};
}

}  // namespace conveyor::pipeline
