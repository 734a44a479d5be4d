// GPT-2 weights from outside a run, read by conveyor's parameter names (model/param_table.h),
// for `conveyor train --init-from` and `conveyor eval`:
//   - a Hugging Face GPT-2 folder (config.json + model.safetensors; hf_gpt2.h), or the
//     model.safetensors inside one;
//   - an llm.c GPT-2 checkpoint file (llmc_gpt2.h; versions 1 and 3);
//   - a conveyor checkpoint, a step directory or a root with LATEST (its weights only).
// The format is told by what the path is: a folder with config.json, a file starting with
// llm.c's magic, a folder with manifest.json or LATEST.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "model/config.h"

namespace conveyor::interop {

class WeightSource {
 public:
  // Throws Error(kUsage) naming the path and what is wrong: not found, no known format,
  // a damaged file (truncated, bad magic or version, a malformed header), a FIFO, device or
  // folder where a file belongs (refused at once, never blocked on), a config.json number
  // out of range (common/json_number.h). A Hugging Face folder's tensors are all checked
  // here against the model its config.json describes, each by its exact shape (Conv1D
  // weights as stored, [in, out]), so read() never meets another shape.
  static std::unique_ptr<WeightSource> open(const std::filesystem::path& path);
  virtual ~WeightSource() = default;

  // The model the weights are for (layers, heads, dim, seq, vocab).
  virtual const model::ModelConfig& config() const = 0;
  // "Hugging Face GPT-2 folder /x", for messages.
  virtual std::string describe() const = 0;
  // Reads parameter `name` into `out` (its size from the parameter table). Throws
  // Error(kUsage) naming the parameter when the source lacks it or holds another shape.
  virtual void read(const std::string& name, std::span<float> out) = 0;
};

// Throws Error(kUsage) when the source's model differs from `wanted` (the run's flags),
// naming every flag that differs and its value in the source.
void require_same_model(const WeightSource& source, const model::ModelConfig& wanted);

}  // namespace conveyor::interop
