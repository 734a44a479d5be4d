#include "train/resume_policy.h"

#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "train/data_identity.h"

namespace conveyor::pipeline {

std::string resume_mode(const TrainConfig& config) {
  if (!config.resume.empty()) return config.resume;
  return config.ckpt_dir.empty() ? "none" : "auto";
}

void require_same_model(const nlohmann::json& saved_config, const TrainConfig& run,
                        const std::string& chosen) {
  const nlohmann::json mine = run.model.to_json();
  const nlohmann::json theirs = saved_config.is_object() && saved_config.contains("model")
                                    ? saved_config["model"]
                                    : nlohmann::json();
  for (const auto& [key, value] : mine.items()) {
    CONVEYOR_REQUIRE(theirs.is_object() && theirs.contains(key) && theirs[key] == value,
                     "checkpoint {} was trained with {} = {} but this run has --{} {}; use the "
                     "checkpoint's value or start a fresh run (--resume none or another "
                     "--ckpt-dir)",
                     chosen, key,
                     theirs.is_object() && theirs.contains(key) ? theirs[key].dump() : "(missing)",
                     key, value.dump());
  }
}

ResumeVerdict judge_continuation(const nlohmann::json& saved, const TrainConfig& run,
                                 const nlohmann::json& run_data_identity,
                                 const std::string& chosen) {
  ResumeVerdict verdict;
  const nlohmann::json mine = run.to_json();
  std::vector<std::string> changed, unknown;
  // A checkpoint from before data parallelism records only --microbatches, with one replica.
  const nlohmann::json none;
  auto saved_value = [&](const char* key, const char* fallback) -> const nlohmann::json& {
    if (!saved.is_object()) return none;
    if (saved.contains(key)) return saved[key];
    return fallback && saved.contains(fallback) ? saved[fallback] : none;
  };
  struct Setting {
    const char *key, *fallback, *flag;
  };
  for (const Setting& s :
       {Setting{"micro_batch_size", nullptr, "--micro-batch-size"},
        Setting{"global_microbatches", "microbatches", "--replicas x --microbatches"}}) {
    const nlohmann::json& theirs = saved_value(s.key, s.fallback);
    if (theirs.is_null()) {
      unknown.push_back(s.flag);
    } else if (theirs != mine[s.key]) {
      changed.push_back(
          fmt::format("{} {} (the checkpoint's: {})", s.flag, mine[s.key].dump(), theirs.dump()));
    }
  }
  if (!saved.is_object() || !saved.contains(kDataIdentityKey)) {
    unknown.push_back("--data");
  } else if (!same_identity(saved[kDataIdentityKey], run_data_identity)) {
    changed.push_back(fmt::format(
        "--data {}: {} (the checkpoint's: {}: {})", run.data, identity_text(run_data_identity),
        saved.contains("data") && saved["data"].is_string() ? saved["data"].get<std::string>()
                                                            : std::string("?"),
        identity_text(saved[kDataIdentityKey])));
  }
  if (!unknown.empty()) {
    verdict.warnings.push_back(fmt::format(
        "checkpoint {} does not record {} (it was written by an older conveyor): cannot check "
        "that this run continues it with the same",
        chosen, fmt::join(unknown, ", ")));
  }
  if (!changed.empty() && run.allow_data_change) {
    verdict.warnings.push_back(fmt::format(
        "resuming from {} with {}, as --allow-data-change allows: the continuation will not "
        "match an uninterrupted run",
        chosen, fmt::join(changed, "; ")));
  } else if (!changed.empty()) {
    verdict.refusal =
        Error(ErrorKind::kUsage,
              fmt::format("checkpoint {} was trained on other data or batches: this run has {}",
                          chosen, fmt::join(changed, "; ")),
              "resume with the checkpoint's settings, start afresh (--resume none or another "
              "--ckpt-dir), or pass --allow-data-change to continue with these");
  }
  for (const auto& [key, flag] : {std::pair{"seed", "--seed"}, std::pair{"steps", "--steps"}}) {
    if (saved.is_object() && saved.contains(key) && saved[key] != mine[key]) {
      verdict.warnings.push_back(
          fmt::format("resuming with {} {} where checkpoint {} has {}: the continuation will not "
                      "match an uninterrupted run",
                      flag, mine[key].dump(), chosen, saved[key].dump()));
    }
  }
  return verdict;
}

}  // namespace conveyor::pipeline
