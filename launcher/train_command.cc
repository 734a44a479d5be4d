// `conveyor train`: the flags of the CLI contract (DESIGN.md), also settable with --config.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/checked_number.h"
#include "common/error.h"
#include "launcher/cli_number.h"
#include "launcher/commands.h"
#include "launcher/config_file.h"
#include "pipeline/runtime/stop_request.h"
#include "pipeline/schedule/schedule.h"
#include "train/trainer.h"

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

// CLI11 reads "-1" into an unsigned option as 2^64 - 1, and the trainer keeps -1 for "not
// given" in --exit-at-step; so both are checked on the text: digits only (and not zero when
// `least` is 1), and at most 2^64 - 1 (more is refused, never clamped). The text is
// rewritten in canonical form (CLI11 would read a leading 0 as octal): register it with
// Option::transform.
CLI::Validator whole_number_at_least(int least, const std::string& unit) {
  return CLI::Validator(
      [least, unit](std::string& text) -> std::string {
        const bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char ch) {
          return ch >= '0' && ch <= '9';
        });
        if (!digits || (least == 1 && text.find_first_not_of('0') == std::string::npos))
          return fmt::format("must be a whole number, {} or more (got '{}')", least, text);
        return check_unsigned(text, unit);
      },
      least == 0 ? "UINT" : "INT>=1");
}

// The settings of `conveyor train` in flag order: each registers its CLI flag and how to
// print its current value as TOML, so --print-config cannot drift from the flags.
class TrainSettings {
 public:
  explicit TrainSettings(CLI::App& sub) : sub_(sub) {}

  // A setting; `unset` (when given) is the value meaning "not set", left out of the TOML.
  template <class T>
  CLI::Option* add(const std::string& flag, T& value, const std::string& help,
                   std::optional<T> unset = std::nullopt) {
    if constexpr (std::is_same_v<T, std::string>) {
      if (!unset) unset = std::string();
    }
    printers_.emplace_back(flag, [&value, unset]() -> std::optional<std::string> {
      if (unset && value == *unset) return std::nullopt;
      return toml_value(value);
    });
    if constexpr (std::is_same_v<T, bool>)
      return sub_.add_flag(flag, value, help);
    else if constexpr (std::is_same_v<T, int>)
      return sub_.add_option(flag, value, help)->transform(decimal_int());
    else
      return sub_.add_option(flag, value, help);
  }

  // "key = value" lines that `--config` reads back (keys are the flags without "--", with
  // '_' for '-').
  std::string to_toml() const {
    std::string out;
    for (const auto& [flag, print] : printers_) {
      if (auto v = print()) {
        std::string key = flag.substr(2);
        std::replace(key.begin(), key.end(), '-', '_');
        out += fmt::format("{} = {}\n", key, *v);
      }
    }
    return out;
  }

 private:
  static std::string toml_value(const std::string& v) {
    std::string out = "\"";
    for (unsigned char ch : v) {
      if (ch == '"' || ch == '\\')
        out += fmt::format("\\{}", char(ch));
      else if (ch < 0x20 || ch == 0x7f)
        out += fmt::format("\\u{:04X}", ch);
      else
        out += char(ch);
    }
    return out + "\"";
  }
  static std::string toml_value(bool v) { return v ? "true" : "false"; }
  template <class T>
  static std::string toml_value(T v) {
    return fmt::format("{}", v);  // integers; floats in their shortest round-trip form
  }

  CLI::App& sub_;
  std::vector<std::pair<std::string, std::function<std::optional<std::string>()>>> printers_;
};

void add_train_flags(TrainSettings& set, CLI::App& sub, pipeline::TrainConfig& c,
                     SimulatedCompute& sim) {
  set.add("--layers", c.model.layers, "transformer blocks")->capture_default_str();
  set.add("--heads", c.model.heads, "attention heads")->capture_default_str();
  set.add("--dim", c.model.dim, "model width")->capture_default_str();
  set.add("--seq", c.model.seq, "context length in tokens")->capture_default_str();
  set.add("--vocab", c.model.vocab, "vocabulary size (256 = bytes)")->capture_default_str();
  set.add("--data", c.data, "text file, folder of text files, or .bin token file")
      ->capture_default_str();
  set.add("--stages", c.stages, "pipeline stages (one process each)")->capture_default_str();
  set.add("--microbatches", c.microbatches, "micro-batches per step")->capture_default_str();
  set.add("--micro-batch-size", c.micro_batch_size, "sequences per micro-batch")
      ->capture_default_str();
  set.add("--schedule", c.schedule, pipeline::schedule_kind_names())->capture_default_str();
  set.add("--virtual-stages", c.virtual_stages,
          "model chunks per stage (0: the schedule's own, 2 for interleaved, zb-v and "
          "dualpipe-v, else 1)")
      ->capture_default_str();
  set.add("--warmup-per-hop", c.warmup_per_hop,
          "1f1b, zb-h1: stage s runs K*(stages-1-s) warm-up forwards; 2 or more hides a slow "
          "link between stages, at K times the activations")
      ->capture_default_str();
  set.add("--partition", c.partition,
          "layers per piece, e.g. 3,3,2,2, or auto: even predicted cost, counting the embedding "
          "and the head (default: the same number of layers each)");
  set.add("--replicas", c.replicas, "data-parallel pipeline replicas (0: world size / --stages)")
      ->capture_default_str();
  set.add("--layout", c.layout,
          "rank order: pipelines (consecutive ranks form one pipeline) | replicas")
      ->capture_default_str();
  set.add("--zero", c.zero, "1: shard AdamW moments across replicas (ZeRO-1)")
      ->capture_default_str();
  set.add("--bucket-mb", c.bucket_mb, "gradient all-reduce bucket size in MiB")
      ->capture_default_str();
  set.add("--overlap", c.overlap, "on: all-reduce gradients while the pipeline cools down | off")
      ->capture_default_str();
  set.add("--steps", c.steps, "length of the whole run (shapes the learning rate)")
      ->capture_default_str();
  set.add("--lr", c.optim.lr, "peak learning rate")->capture_default_str();
  set.add("--warmup", c.optim.warmup, "linear warmup steps")->capture_default_str();
  set.add("--weight-decay", c.optim.weight_decay, "AdamW weight decay (2-D weights)")
      ->capture_default_str();
  set.add("--grad-clip", c.optim.grad_clip, "clip the global gradient norm (0: off)")
      ->capture_default_str();
  set.add("--seed", c.seed, "seed of initialisation and data order")
      ->capture_default_str()
      ->transform(whole_number_at_least(0, "seed values"));
  set.add("--exit-at-step", c.exit_at_step, "stop after this step (saving first with --ckpt-dir)",
          std::optional<int64_t>(-1))
      ->transform(whole_number_at_least(1, "steps"));
  set.add("--ckpt-dir", c.ckpt_dir, "directory for checkpoints");
  set.add("--save-every", c.save_every, "save every K steps (0: only at the end)")
      ->capture_default_str();
  set.add("--keep", c.keep, "committed checkpoints to keep (0: all)")->capture_default_str();
  set.add("--resume", c.resume, "auto | none | PATH (default auto with --ckpt-dir)");
  set.add("--async-save", c.async_save, "write checkpoints in a background thread");
  set.add("--allow-data-change", c.allow_data_change,
          "resume even if --data, --micro-batch-size or --microbatches differ from the "
          "checkpoint's");
  set.add("--init-from", c.init_from,
          "start from these weights: a Hugging Face GPT-2 folder, an llm.c .bin checkpoint or a "
          "conveyor checkpoint (weights only)");
  set.add("--tokenizer", c.tokenizer,
          "print --sample as text with this tokenizer (a SentencePiece .model from conveyor "
          "tokenize, or llm.c's gpt2_tokenizer.bin)");
  set.add("--val-data", c.val_data, "held-out file or folder scored during training");
  set.add("--eval-every", c.eval_every, "validation loss every N steps (0: after the last only)")
      ->capture_default_str();
  set.add("--val-windows", c.val_windows, "windows of --seq tokens scored (0: all)")
      ->capture_default_str();
  set.add("--metrics", c.metrics, "append one JSON object per step to this file");
  set.add("--trace", c.trace, "write a Chrome/Perfetto trace of the run");
  set.add("--device", c.device, "cpu | cuda")->capture_default_str();
  set.add("--gpu", c.gpu, "--device cuda: this rank's GPU (-1: its local rank % GPUs)")
      ->capture_default_str();
  set.add("--peak-tflops", c.peak_tflops,
          "dense TFLOP/s of one rank's device, for MFU in the metrics and progress line "
          "(default: the GPU's known fp32 peak with --device cuda; on the CPU none, see `conveyor "
          "bench sgemm`)",
          std::optional<double>(0))
      ->transform(real_in(pipeline::kMinPeakTflops, pipeline::kMaxPeakTflops, "TFLOP/s"));
  set.add("--threads", c.threads, "OpenBLAS threads per stage (0: cores / stages)")
      ->capture_default_str();
  set.add("--sample", c.sample, "generate this many characters at the end")->capture_default_str();
  set.add("--print-every", c.print_every, "progress line every N steps")->capture_default_str();
  // Benchmark-only: simulated compute (conveyor bench schedule); hidden from --help and
  // from --print-config.
  for (auto [flag, ms] :
       {std::pair{"--sleep-f-ms", &sim.f_ms}, std::pair{"--sleep-b-ms", &sim.b_ms},
        std::pair{"--sleep-w-ms", &sim.w_ms}}) {
    sub.add_option(flag, *ms)->group("")->transform(
        real_in(0, kMaxSettingSeconds * 1000, "milliseconds", flag));
  }
}

}  // namespace

void add_train(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand("train", "train a GPT model (one process per stage)");
  auto config = std::make_shared<pipeline::TrainConfig>();
  auto config_path = std::make_shared<std::string>();
  auto sim = std::make_shared<SimulatedCompute>();
  auto settings = std::make_shared<TrainSettings>(*sub);
  auto print_config = std::make_shared<bool>(false);
  // A flag given twice takes its last value, so wrappers can append overrides.
  sub->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  add_train_flags(*settings, *sub, *config, *sim);
  sub->add_option("--config", *config_path, "TOML file with any of these flags (flags win)");
  sub->add_flag("--print-config", *print_config,
                "print the effective settings as TOML (for --config) and exit");
  sub->callback([&run, sub, config, config_path, sim, settings, print_config] {
    run = [sub, config, config_path, sim, settings, print_config] {
      if (!config_path->empty()) apply_config_file(*sub, *config_path);
      config->settings_toml = settings->to_toml();
      if (*print_config) {
        config->validate();
        std::printf("# conveyor train settings; run them with: conveyor train --config FILE\n%s",
                    config->settings_toml.c_str());
        return kExitOk;
      }
      const auto summary = pipeline::train(*config, pipeline::TrainHooks{sim->hook()});
      if (!summary.stopped_on_request) return kExitOk;
      // Preempted with its state saved: requeue and rerun. Without a checkpoint there is
      // nothing to resume, so the exit says "killed by the signal", as it would have been.
      return pipeline::stop_exit_code(!config->ckpt_dir.empty());
    };
  });
}

}  // namespace conveyor::cli
