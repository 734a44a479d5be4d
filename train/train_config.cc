#include "train/train_config.h"

#include <xxhash.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <thread>

#include "common/error.h"
#include "common/printable.h"
#include "kernels/device.h"
#include "model/partition.h"
#include "pipeline/runtime/message_tag.h"
#include "pipeline/schedule/schedule.h"
#include "pipeline/schedule/topology.h"

namespace conveyor::pipeline {

void TrainConfig::validate() const {
  model.validate();
  CONVEYOR_REQUIRE(stages >= 1, "--stages must be at least 1 (got {})", stages);
  CONVEYOR_REQUIRE(microbatches >= 1, "--microbatches must be at least 1 (got {})", microbatches);
  CONVEYOR_REQUIRE(micro_batch_size >= 1, "--micro-batch-size must be at least 1 (got {})",
                   micro_batch_size);
  CONVEYOR_REQUIRE(virtual_stages >= 0,
                   "--virtual-stages must be at least 1 (got {}; 0 or none takes the "
                   "schedule's own)",
                   virtual_stages);
  const int chunks = chunks_per_stage();
  CONVEYOR_REQUIRE(microbatches < kMaxTagMicrobatches,
                   "--microbatches {} is more than the {} a step can carry; use fewer, larger "
                   "micro-batches (--micro-batch-size)",
                   microbatches, kMaxTagMicrobatches - 1);
  CONVEYOR_REQUIRE(int64_t(stages) * chunks <= kMaxTagVirtualStages,
                   "--stages {} x --virtual-stages {} is more than the {} pipeline pieces a job "
                   "can have",
                   stages, chunks, kMaxTagVirtualStages);
  CONVEYOR_REQUIRE(stages * chunks <= model.layers,
                   "--stages {} x --virtual-stages {} = {} pipeline pieces but the model has only "
                   "{} layers; every piece needs a layer: lower --stages or raise --layers",
                   stages, chunks, stages * chunks, model.layers);
  model::resolve_partition(partition, model, stages * chunks);  // throws naming the fix
  CONVEYOR_REQUIRE(replicas >= 0 && replicas <= kMaxReplicas,
                   "--replicas must be between 1 and {} (got {}; 0 derives it from the world "
                   "size)",
                   kMaxReplicas, replicas);
  parse_rank_order(layout);  // throws naming the values
  CONVEYOR_REQUIRE(zero == 0 || zero == 1,
                   "--zero {} is not a ZeRO stage conveyor has; use 0 (off) or 1 (AdamW moments "
                   "sharded across replicas)",
                   zero);
  CONVEYOR_REQUIRE(std::isfinite(bucket_mb) && bucket_mb > 0 && bucket_mb <= 4096,
                   "--bucket-mb must be more than 0 and at most 4096 (got {})", bucket_mb);
  CONVEYOR_REQUIRE(overlap == "on" || overlap == "off",
                   "--overlap '{}' is not known; use on (all-reduce while the pipeline cools "
                   "down) or off",
                   overlap);
  CONVEYOR_REQUIRE(global_microbatches() < kMaxTagMicrobatches,
                   "--replicas {} x --microbatches {} is more than the {} micro-batches a step "
                   "can have; use fewer, larger micro-batches (--micro-batch-size)",
                   replica_count(), microbatches, kMaxTagMicrobatches - 1);
  CONVEYOR_REQUIRE(steps >= 1, "--steps must be at least 1 (got {})", steps);
  // Hyperparameters: finite, and inside the range where AdamW is still an optimizer.
  CONVEYOR_REQUIRE(std::isfinite(optim.lr) && optim.lr > 0 && optim.lr <= kMaxLearningRate,
                   "--lr must be a positive number of at most {} (got {}); GPT training uses "
                   "about 1e-4 to 1e-2",
                   kMaxLearningRate, optim.lr);
  CONVEYOR_REQUIRE(optim.warmup >= 0, "--warmup must not be negative (got {})", optim.warmup);
  CONVEYOR_REQUIRE(std::isfinite(optim.weight_decay) && optim.weight_decay >= 0,
                   "--weight-decay must be a finite number, 0 or more (got {})",
                   optim.weight_decay);
  // Decoupled decay multiplies each weight by (1 - lr * weight_decay) per step.
  CONVEYOR_REQUIRE(double(optim.lr) * optim.weight_decay < 1.0,
                   "--lr {} x --weight-decay {} must be below 1, or every step would zero or "
                   "flip the weights; GPT training uses a weight decay of about 0.1",
                   optim.lr, optim.weight_decay);
  CONVEYOR_REQUIRE(std::isfinite(optim.grad_clip) && optim.grad_clip >= 0,
                   "--grad-clip must be a finite number, 0 (off) or more (got {})",
                   optim.grad_clip);
  CONVEYOR_REQUIRE(exit_at_step == -1 || (exit_at_step >= 1 && exit_at_step <= steps),
                   "--exit-at-step {} must be between 1 and --steps {}", exit_at_step, steps);
  // Throws for a name it does not know. Whether this build has the CUDA backend and this host
  // a GPU is the device seam's to say at start (kernels/device.h, choose_rank_gpu).
  const kernels::DeviceKind kind = kernels::parse_device_kind(device);
  CONVEYOR_REQUIRE(gpu >= -1, "--gpu must be a GPU index, or -1 for the local rank's GPU (got {})",
                   gpu);
  CONVEYOR_REQUIRE(gpu == -1 || kind == kernels::DeviceKind::kCuda, "--gpu {} needs --device {}",
                   gpu, kernels::device_kind_name(kernels::DeviceKind::kCuda));
  CONVEYOR_REQUIRE(
      peak_tflops == 0 || (std::isfinite(peak_tflops) && peak_tflops >= kMinPeakTflops &&
                           peak_tflops <= kMaxPeakTflops),
      "--peak-tflops must be a number of TFLOP/s in [{}, {}] (got {}); `conveyor "
      "bench sgemm` measures a CPU's rate",
      kMinPeakTflops, kMaxPeakTflops, peak_tflops);
  CONVEYOR_REQUIRE(save_every >= 0, "--save-every must not be negative (got {})", save_every);
  CONVEYOR_REQUIRE(save_every == 0 || !ckpt_dir.empty(),
                   "--save-every {} needs --ckpt-dir to say where checkpoints go", save_every);
  CONVEYOR_REQUIRE(!async_save || !ckpt_dir.empty(),
                   "--async-save needs --ckpt-dir to say where checkpoints go");
  CONVEYOR_REQUIRE(keep >= 0, "--keep must not be negative (got {}; 0 keeps all)", keep);
  CONVEYOR_REQUIRE(print_every >= 0, "--print-every must not be negative (got {}; 0: none)",
                   print_every);
  CONVEYOR_REQUIRE(eval_every >= 0, "--eval-every must not be negative (got {})", eval_every);
  CONVEYOR_REQUIRE(eval_every == 0 || !val_data.empty(),
                   "--eval-every {} needs --val-data to say what to score", eval_every);
  CONVEYOR_REQUIRE(val_windows >= 0, "--val-windows must not be negative (got {}; 0: all)",
                   val_windows);
  CONVEYOR_REQUIRE(sample >= 0, "--sample must not be negative (got {})", sample);
  CONVEYOR_REQUIRE(threads >= 0, "--threads must not be negative (got {})", threads);
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  CONVEYOR_REQUIRE(cores <= 0 || threads <= cores,
                   "--threads {} is more than the {} cores of this host; use at most {} (0 shares "
                   "the cores among the stages)",
                   threads, cores, cores);
  // The kernels index a micro-batch's rows (micro-batch size x seq) and the MLP's width
  // (4 x dim) with 32-bit ints; memory is checked against the host at start-up.
  CONVEYOR_REQUIRE(int64_t(micro_batch_size) * model.seq <= std::numeric_limits<int32_t>::max(),
                   "--micro-batch-size {} x --seq {} = {} tokens per micro-batch is more than "
                   "the {} one micro-batch can hold; use fewer, smaller sequences",
                   micro_batch_size, model.seq, int64_t(micro_batch_size) * model.seq,
                   std::numeric_limits<int32_t>::max());
}

int TrainConfig::chunks_per_stage() const {
  return virtual_stages > 0 ? virtual_stages
                            : default_virtual_stages(parse_schedule_kind(schedule));
}

nlohmann::json TrainConfig::to_json() const {
  return {{"model", model.to_json()},
          {"data", utf8_text(data)},  // a JSON string: valid UTF-8
          {"stages", stages},
          {"replicas", replica_count()},
          {"layout", layout},
          {"zero", zero},
          {"bucket_mb", bucket_mb},
          {"overlap", overlap},
          {"microbatches", microbatches},
          {"global_microbatches", global_microbatches()},
          {"micro_batch_size", micro_batch_size},
          {"schedule", schedule},
          {"virtual_stages", chunks_per_stage()},
          {"warmup_per_hop", warmup_per_hop},
          {"partition", partition},
          {"steps", steps},
          {"lr", optim.lr},
          {"warmup", optim.warmup},
          {"weight_decay", optim.weight_decay},
          {"grad_clip", optim.grad_clip},
          {"seed", seed}};
}

std::string fingerprint_of(const nlohmann::json& value) {
  const std::string text = value.dump();
  return fmt::format("{:016x}", XXH3_64bits(text.data(), text.size()));
}

std::string TrainConfig::fingerprint() const {
  return fingerprint_of(to_json());
}

}  // namespace conveyor::pipeline
