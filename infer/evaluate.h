// `conveyor eval`: the mean cross-entropy of a checkpoint on a file's first K windows.
#pragma once

#include <cstdint>
#include <string>

namespace conveyor::pipeline {

struct EvalResult {
  double loss = 0;      // mean cross-entropy per token (nats)
  int64_t windows = 0;  // windows evaluated
  int64_t tokens = 0;   // tokens scored
};

// Loads the weights at `ckpt` (interop/weight_source.h: a conveyor checkpoint -- a step
// directory or a root holding LATEST, saved by any number of stages --, a Hugging Face GPT-2
// folder or an llm.c file) into one process and scores non-overlapping windows of `data`:
// window i has inputs bytes[i*T .. i*T+T-1] and targets bytes[i*T+1 .. i*T+T], T from the
// weights' model. max_windows <= 0 means every window. Throws Error(kUsage) for missing or
// invalid weights, unusable data, or data shorter than one window.
EvalResult evaluate(const std::string& ckpt, const std::string& data, int64_t max_windows);

}  // namespace conveyor::pipeline
