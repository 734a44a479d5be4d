// Everything `conveyor train` is told: the flags of the CLI contract (DESIGN.md), in one
// struct. The CLI (launcher/train_command.cc) fills it; the trainer only reads it.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "model/config.h"
#include "model/optimizer.h"

namespace conveyor::pipeline {

// --lr above this is refused: AdamW's step is about lr per weight, so 1 already moves every
// weight by its own scale each step.
inline constexpr float kMaxLearningRate = 1.0f;
// --replicas above this is refused (a ring of that many is already slow to start).
inline constexpr int kMaxReplicas = 4096;
// --peak-tflops is in [kMinPeakTflops, kMaxPeakTflops]: from 1 GFLOP/s (slower than any core
// that trains) to 100 PFLOP/s per device (a hundred times today's largest).
inline constexpr double kMinPeakTflops = 1e-3;
inline constexpr double kMaxPeakTflops = 1e5;

struct TrainConfig {
  model::ModelConfig model;
  model::OptimizerConfig optim;
  std::string data = conveyor::data::kDefaultCorpus;

  // Pipeline
  int stages = 1;
  int microbatches = 4;
  int micro_batch_size = 8;
  std::string schedule = "1f1b";
  int virtual_stages = 0;  // chunks per stage; 0: the schedule's own (chunks_per_stage())
  int warmup_per_hop = 1;  // 1f1b, zb-h1: K x the textbook warm-up (schedule.h)
  std::string partition;   // empty: balanced

  // Data parallelism (docs/PARALLELISM.md)
  int replicas = 0;                  // pipeline replicas; 0: world size / --stages
  std::string layout = "pipelines";  // rank order: pipelines | replicas (topology.h)
  int zero = 0;                      // 1: ZeRO-1, AdamW moments sharded across replicas
  double bucket_mb = 25;             // gradient all-reduce bucket size, MiB
  std::string overlap = "on";        // on: all-reduce while the pipeline cools down; off

  // Run
  int64_t steps = 600;
  int64_t exit_at_step = -1;  // stop after this step (saving first when ckpt_dir is set)
  uint64_t seed = 1337;
  std::string device = "cpu";
  int threads = 0;  // OpenBLAS threads per process; 0 = cores / stages on this host
  // --device cuda: this rank's GPU; -1 = its local rank % GPUs of the host (several ranks may
  // share one; kernels/device.h, choose_gpu). Where a rank runs, not what it computes: not
  // part of to_json().
  int gpu = -1;
  // --peak-tflops: the dense TFLOP/s of one rank's device, MFU's denominator (train/mfu.h);
  // 0: not given (the GPU's known peak with --device cuda, else no MFU). Like --gpu, it says
  // where the run runs, not what it computes: not part of to_json(), so a resume may change it.
  double peak_tflops = 0;

  // Checkpoints
  std::string ckpt_dir;
  int64_t save_every = 0;
  int keep = 3;
  std::string resume;  // "auto" | "none" | PATH; empty = auto when ckpt_dir is set
  bool async_save = false;
  bool allow_data_change = false;  // resume even with other --data or batch settings
  // Start from these weights (interop/weight_source.h: a Hugging Face GPT-2 folder, an llm.c
  // checkpoint, a conveyor checkpoint) instead of random ones; fresh optimizer state. A run
  // that resumes from --ckpt-dir ignores it.
  std::string init_from;
  // Prints --sample as text (data/tokenizer.h: a SentencePiece model, llm.c's tokenizer file).
  std::string tokenizer;

  // Validation
  std::string val_data;      // scored every eval_every steps (and after the last)
  int64_t eval_every = 0;    // 0: only after the last step (when val_data is set)
  int64_t val_windows = 64;  // windows of seq tokens scored (0: all of val_data)

  // Output
  std::string metrics;
  std::string trace;
  int sample = 0;  // characters generated at the end
  int print_every = 10;

  // Every setting above as `conveyor train --print-config` prints it (TOML that --config
  // reads back); filled by the CLI, stored in every checkpoint. Not part of to_json().
  std::string settings_toml;

  // Throws Error(kUsage) naming the flag and how to fix it.
  void validate() const;
  // Replicas once resolved (replicas, or 1 before the trainer resolved 0 from the world).
  int replica_count() const { return replicas > 0 ? replicas : 1; }
  // Model chunks per stage: --virtual-stages, or the schedule's own when not given (2 for
  // interleaved, zb-v and dualpipe-v, else 1). Throws Error(kUsage) for an unknown schedule.
  int chunks_per_stage() const;
  // Micro-batches of the global batch (every replica's).
  int64_t global_microbatches() const { return int64_t(replica_count()) * microbatches; }
  // Tokens processed by one optimizer step, over all replicas.
  int64_t tokens_per_step() const { return global_microbatches() * micro_batch_size * model.seq; }
  // The settings that must match across ranks and across a resume (model and data shape).
  nlohmann::json to_json() const;
  // fingerprint_of(to_json()), to check that all ranks run the same configuration.
  std::string fingerprint() const;
};

// A short hash (16 hex digits) of a JSON value's compact text: the one fingerprint function
// (rank agreement at rendezvous; the model's fingerprint in checkpoint manifests).
std::string fingerprint_of(const nlohmann::json& value);

}  // namespace conveyor::pipeline
