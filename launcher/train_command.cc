// `conveyor train`: the flags of the CLI contract (DESIGN.md), also settable with --config.
#include <chrono>
#include <cstdio>
#include <thread>

#include "common/error.h"
#include "launcher/commands.h"
#include "launcher/config_file.h"
#include "pipeline/trainer.h"

namespace conveyor::cli {

namespace {

// Benchmark-only (`conveyor bench schedule`): simulated compute per F, B and W, in ms.
struct SimulatedCompute {
  double f_ms = 0, b_ms = 0, w_ms = 0;

  // A compute hook that sleeps after each action, or none when nothing is simulated.
  pipeline::ComputeHook hook() const {
    if (f_ms <= 0 && b_ms <= 0 && w_ms <= 0) return {};
    return [c = *this](const pipeline::Action& a) {
      const double ms = a.op == pipeline::Op::kForward         ? c.f_ms
                        : a.op == pipeline::Op::kBackwardInput ? c.b_ms
                                                               : c.w_ms;
      if (ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms));
    };
  }
};

void add_train_flags(CLI::App& sub, pipeline::TrainConfig& c, SimulatedCompute& sim) {
  sub.add_option("--layers", c.model.layers, "transformer blocks")->capture_default_str();
  sub.add_option("--heads", c.model.heads, "attention heads")->capture_default_str();
  sub.add_option("--dim", c.model.dim, "model width")->capture_default_str();
  sub.add_option("--seq", c.model.seq, "context length in tokens")->capture_default_str();
  sub.add_option("--vocab", c.model.vocab, "vocabulary size (256 = bytes)")->capture_default_str();
  sub.add_option("--data", c.data, "text file, folder of text files, or .bin token file")
      ->capture_default_str();
  sub.add_option("--stages", c.stages, "pipeline stages (one process each)")->capture_default_str();
  sub.add_option("--microbatches", c.microbatches, "micro-batches per step")->capture_default_str();
  sub.add_option("--micro-batch-size", c.micro_batch_size, "sequences per micro-batch")
      ->capture_default_str();
  sub.add_option("--schedule", c.schedule, "gpipe | 1f1b | interleaved | zb-h1")
      ->capture_default_str();
  sub.add_option("--virtual-stages", c.virtual_stages, "model chunks per stage (interleaved)")
      ->capture_default_str();
  sub.add_option("--partition", c.partition, "layers per piece, e.g. 3,3,2,2 (default: balanced)");
  sub.add_option("--steps", c.steps, "length of the whole run (shapes the learning rate)")
      ->capture_default_str();
  sub.add_option("--lr", c.optim.lr, "peak learning rate")->capture_default_str();
  sub.add_option("--warmup", c.optim.warmup, "linear warmup steps")->capture_default_str();
  sub.add_option("--weight-decay", c.optim.weight_decay, "AdamW weight decay (2-D weights)")
      ->capture_default_str();
  sub.add_option("--grad-clip", c.optim.grad_clip, "clip the global gradient norm (0: off)")
      ->capture_default_str();
  sub.add_option("--seed", c.seed, "seed of initialisation and data order")->capture_default_str();
  sub.add_option("--exit-at-step", c.exit_at_step,
                 "stop after this step (saving first with --ckpt-dir)");
  sub.add_option("--ckpt-dir", c.ckpt_dir, "directory for checkpoints");
  sub.add_option("--save-every", c.save_every, "save every K steps (0: only at the end)")
      ->capture_default_str();
  sub.add_option("--keep", c.keep, "committed checkpoints to keep (0: all)")->capture_default_str();
  sub.add_option("--resume", c.resume, "auto | none | PATH (default auto with --ckpt-dir)");
  sub.add_flag("--async-save", c.async_save, "write checkpoints in a background thread");
  sub.add_option("--metrics", c.metrics, "append one JSON object per step to this file");
  sub.add_option("--trace", c.trace, "write a Chrome/Perfetto trace of the run");
  sub.add_option("--device", c.device, "cpu | cuda")->capture_default_str();
  sub.add_option("--threads", c.threads, "OpenBLAS threads per stage (0: cores / stages)")
      ->capture_default_str();
  sub.add_option("--sample", c.sample, "generate this many characters at the end")
      ->capture_default_str();
  sub.add_option("--print-every", c.print_every, "progress line every N steps")
      ->capture_default_str();
  // Benchmark-only: simulated compute (conveyor bench schedule); hidden from --help.
  sub.add_option("--sleep-f-ms", sim.f_ms)->group("");
  sub.add_option("--sleep-b-ms", sim.b_ms)->group("");
  sub.add_option("--sleep-w-ms", sim.w_ms)->group("");
}

}  // namespace

void add_train(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand("train", "train a GPT model (one process per stage)");
  auto config = std::make_shared<pipeline::TrainConfig>();
  auto config_path = std::make_shared<std::string>();
  auto sim = std::make_shared<SimulatedCompute>();
  // A flag given twice takes its last value, so wrappers can append overrides.
  sub->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  add_train_flags(*sub, *config, *sim);
  sub->add_option("--config", *config_path, "TOML file with any of these flags (flags win)");
  sub->callback([&run, sub, config, config_path, sim] {
    run = [sub, config, config_path, sim] {
      if (!config_path->empty()) apply_config_file(*sub, *config_path);
      pipeline::train(*config, pipeline::TrainHooks{sim->hook()});
      return kExitOk;
    };
  });
}

}  // namespace conveyor::cli
