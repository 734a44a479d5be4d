// `conveyor ckpt verify|inspect|settings DIR`: check, describe or print the settings of a
// checkpoint step; `conveyor ckpt export --format hf DIR OUT`: its weights for other tools. DIR is
// a step directory (step_NNNNNNNNN) or a checkpoint root, in which case LATEST names the step.
// verify checks what resuming checks: the files, and that the manifest agrees with its
// shards, its directory and the model it saved (every parameter, with its shape).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "common/error.h"
#include "common/json_number.h"
#include "interop/hf_gpt2.h"
#include "interop/llmc_gpt2.h"
#include "launcher/commands.h"
#include "train/stage_checkpoint.h"

namespace conveyor::cli {

namespace {

int run_verify(const std::string& dir, bool quick) {
  auto step_dir = checkpoint::resolve_step_dir(dir);
  auto result = checkpoint::verify(
      step_dir, quick ? checkpoint::VerifyLevel::kStructure : checkpoint::VerifyLevel::kFull,
      pipeline::saved_model_params);
  fmt::print("ok: step {}, {} shards, {} datasets {}\n", result.step, result.shards,
             result.datasets, quick ? "present (checksums not read)" : "verified");
  return kExitOk;
}

int run_inspect(const std::string& dir) {
  auto step_dir = checkpoint::resolve_step_dir(dir);
  auto m = checkpoint::read_manifest(step_dir);
  fmt::print("checkpoint: {}\n", step_dir.string());
  fmt::print("step: {}\n", m.step);
  // With data-parallel replicas a shard is a rank's (docs/CHECKPOINT_FORMAT.md).
  // Numbers of a possibly damaged manifest through common/json_number.h, never a bare cast.
  auto saved_count = [&](const char* key, int64_t fallback) {
    if (!m.config.is_object() || !m.config.contains(key)) return fallback;
    return json_integer(m.config.at(key), fmt::format("manifest.json config \"{}\"", key), 0,
                        std::numeric_limits<int>::max(), key);
  };
  const int64_t replicas = saved_count("replicas", 1);
  if (replicas > 1) {
    fmt::print("shards: {} ({} replicas x {} stages: one per rank, numbered by rank)\n",
               m.num_shards, replicas, saved_count("stages", 0));
  } else {
    fmt::print("stages: {}\n", m.num_shards);
  }
  fmt::print("fingerprint: {}\n", m.fingerprint.empty() ? "(none)" : m.fingerprint);
  nlohmann::json config = m.config;
  const bool has_settings = config.is_object() && config.contains(pipeline::kSettingsKey);
  if (has_settings) config.erase(pipeline::kSettingsKey);
  fmt::print("config:\n{}\n", config.is_null() ? "(none)" : config.dump(2));
  fmt::print("settings: {}\n", has_settings ? "saved (conveyor ckpt settings DIR prints them)"
                                            : "(none: written before settings were saved)");

  uint64_t total = 0;
  fmt::print("shards:\n");
  for (const auto& shard : m.shards) {
    bool optim = shard.datasets.count(
        fmt::format("/{}/{}", checkpoint::kExpAvg, shard.params.empty() ? "" : shard.params[0]));
    fmt::print("  stage {:>3}  {}  {} bytes  {} parameters{}\n", shard.shard, shard.file,
               shard.bytes, shard.params.size(), optim ? " + Adam state" : "");
    total += shard.bytes;
  }
  fmt::print("total: {} bytes\n", total);
  if (!m.layer_shards.empty()) {
    fmt::print("layer -> {}: {}\n", replicas > 1 ? "shard" : "stage",
               fmt::join(m.layer_shards, " "));
  }

  // One row per parameter copy, in the order each shard wrote them; columns aligned.
  struct Row {
    std::string file, name, shape, bytes, note;
  };
  std::vector<Row> rows;
  size_t name_w = 0, shape_w = 0;
  for (const auto& shard : m.shards) {
    for (const auto& name : shard.params) {
      const auto& info = shard.datasets.at(fmt::format("/{}/{}", checkpoint::kParams, name));
      const auto& loc = m.params.at(name);
      Row row{shard.file, name, fmt::format("[{}]", fmt::join(info.shape, ", ")),
              std::to_string(checkpoint::element_count(info.shape) * sizeof(float)),
              loc.shard == shard.shard ? "" : fmt::format("  (copy of stage {})", loc.shard)};
      name_w = std::max(name_w, row.name.size());
      shape_w = std::max(shape_w, row.shape.size());
      rows.push_back(std::move(row));
    }
  }
  fmt::print("parameters ({}; file, name, shape, bytes):\n", m.params.size());
  for (const auto& r : rows) {
    fmt::print("  {}  {:<{}}  {:<{}}  {}{}\n", r.file, r.name, name_w, r.shape, shape_w, r.bytes,
               r.note);
  }
  return kExitOk;
}

// Prints the saved settings as TOML, ready for `conveyor train --config`.
int run_settings(const std::string& dir) {
  auto step_dir = checkpoint::resolve_step_dir(dir);
  auto m = checkpoint::read_manifest(step_dir);
  if (!m.config.is_object() || !m.config.contains(pipeline::kSettingsKey) ||
      !m.config.at(pipeline::kSettingsKey).is_string()) {
    throw Error(ErrorKind::kUsage,
                fmt::format("checkpoint {} holds no settings (it was written before conveyor "
                            "saved them)",
                            step_dir.string()),
                "conveyor ckpt inspect shows the configuration it does hold");
  }
  fmt::print("# settings of {} (step {}); run them with: conveyor train --config FILE\n{}",
             step_dir.string(), m.step, m.config.at(pipeline::kSettingsKey).get<std::string>());
  return kExitOk;
}

int run_export(const std::string& dir, const std::string& format, const std::string& out) {
  auto step_dir = checkpoint::resolve_step_dir(dir);
  if (format == "hf") {
    interop::export_hf(step_dir, out);
    fmt::print("exported {} as a Hugging Face GPT-2 model: {}/model.safetensors, {}/config.json\n",
               step_dir.string(), out, out);
  } else {
    interop::export_llmc(step_dir, out);
    fmt::print("exported {} as an llm.c GPT-2 checkpoint: {}\n", step_dir.string(), out);
  }
  return kExitOk;
}

}  // namespace

void add_ckpt(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand("ckpt", "Verify or inspect a checkpoint");
  sub->require_subcommand(1);

  struct Options {
    std::string dir;
    bool quick = false;
  };
  static Options verify_opts, inspect_opts, settings_opts, export_opts;

  auto* verify = sub->add_subcommand(
      "verify", "Check every shard and dataset checksum of a checkpoint step (exit 2 if bad)");
  verify->add_option("DIR", verify_opts.dir, "step directory, or checkpoint root with LATEST")
      ->required();
  verify->add_flag("--quick", verify_opts.quick,
                   "check files, sizes and datasets without reading the data");
  verify->callback([&run] { run = [] { return run_verify(verify_opts.dir, verify_opts.quick); }; });

  auto* inspect = sub->add_subcommand(
      "inspect", "Print a checkpoint's step, config, stages and every parameter's shape and file");
  inspect->add_option("DIR", inspect_opts.dir, "step directory, or checkpoint root with LATEST")
      ->required();
  inspect->callback([&run] { run = [] { return run_inspect(inspect_opts.dir); }; });

  auto* settings = sub->add_subcommand(
      "settings", "Print the settings a checkpoint was trained with, as TOML for --config");
  settings->add_option("DIR", settings_opts.dir, "step directory, or checkpoint root with LATEST")
      ->required();
  settings->callback([&run] { run = [] { return run_settings(settings_opts.dir); }; });

  static std::string export_format = "hf", export_out;
  auto* exporter = sub->add_subcommand(
      "export",
      "Write a checkpoint's weights for other tools (hf: a Hugging Face GPT-2 folder; llmc: an "
      "llm.c checkpoint file)");
  exporter
      ->add_option("--format", export_format,
                   "hf (OUT/model.safetensors + OUT/config.json) or llmc (the file OUT)")
      ->check(CLI::IsMember({"hf", "llmc"}))
      ->capture_default_str();
  exporter->add_option("DIR", export_opts.dir, "step directory, or checkpoint root with LATEST")
      ->required();
  exporter->add_option("OUT", export_out, "the folder (hf) or file (llmc) to write")->required();
  exporter->callback(
      [&run] { run = [] { return run_export(export_opts.dir, export_format, export_out); }; });
}

}  // namespace conveyor::cli
