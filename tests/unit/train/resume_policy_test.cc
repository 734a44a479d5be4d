// The resume policy (train/resume_policy.h): which checkpoints a run may continue, from the
// saved configuration alone.
#include <catch2/catch.hpp>

#include "train/data_identity.h"
#include "train/resume_policy.h"

namespace {

using namespace conveyor;
using namespace conveyor::pipeline;

TrainConfig run_config() {
  TrainConfig c;
  c.model.layers = 2;
  c.model.dim = 32;
  c.model.heads = 2;
  c.model.seq = 16;
  c.data = "corpus.txt";
  c.micro_batch_size = 4;
  c.microbatches = 8;
  c.steps = 100;
  c.seed = 7;
  return c;
}

const nlohmann::json kIdentity = {{"files", 1}, {"bytes", 4096}, {"xxh3", "0123456789abcdef"}};

// What the run's own commit would record.
nlohmann::json saved_by(const TrainConfig& c) {
  nlohmann::json saved = c.to_json();
  saved[kDataIdentityKey] = kIdentity;
  return saved;
}

bool mentions(const std::vector<std::string>& lines, const std::string& text) {
  for (const auto& line : lines)
    if (line.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("resume mode: auto with a checkpoint directory, none without, else as given") {
  TrainConfig c = run_config();
  CHECK(resume_mode(c) == "none");
  c.ckpt_dir = "ckpt";
  CHECK(resume_mode(c) == "auto");
  c.resume = "none";
  CHECK(resume_mode(c) == "none");
  c.resume = "ckpt/step_00000010";
  CHECK(resume_mode(c) == "ckpt/step_00000010");
}

TEST_CASE("a run continues its own checkpoint without a word, whatever its layout") {
  const TrainConfig run = run_config();
  TrainConfig other_layout = run;
  other_layout.stages = 4;
  other_layout.schedule = "zb-h1";
  const auto verdict = judge_continuation(saved_by(other_layout), run, kIdentity, "step_10");
  CHECK_FALSE(verdict.refusal);
  CHECK(verdict.warnings.empty());
  CHECK_NOTHROW(require_same_model(saved_by(other_layout), run, "step_10"));
}

TEST_CASE("another model shape is refused naming the field and both values") {
  const TrainConfig run = run_config();
  TrainConfig wider = run;
  wider.model.dim = 64;
  try {
    require_same_model(saved_by(wider), run, "step_10");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.exit_code() == kExitUsage);
    CHECK_THAT(e.message(), Catch::Contains("dim = 64") && Catch::Contains("--dim 32"));
  }
  CHECK_THROWS_AS(require_same_model(nlohmann::json::object(), run, "step_10"), Error);
}

TEST_CASE("other data or batches are refused, or only warned about with --allow-data-change") {
  TrainConfig run = run_config();
  TrainConfig smaller_batches = run;
  smaller_batches.micro_batch_size = 2;
  auto verdict = judge_continuation(saved_by(smaller_batches), run, kIdentity, "step_10");
  REQUIRE(verdict.refusal);
  CHECK(verdict.refusal->exit_code() == kExitUsage);
  CHECK_THAT(verdict.refusal->message(),
             Catch::Contains("--micro-batch-size 4 (the checkpoint's: 2)"));

  nlohmann::json other_data = saved_by(run);
  other_data[kDataIdentityKey]["xxh3"] = "fedcba9876543210";
  verdict = judge_continuation(other_data, run, kIdentity, "step_10");
  REQUIRE(verdict.refusal);
  CHECK_THAT(verdict.refusal->message(), Catch::Contains("--data corpus.txt"));

  TrainConfig more_replicas = run;
  more_replicas.replicas = 2;  // the global batch doubles: other batches
  CHECK(judge_continuation(saved_by(run), more_replicas, kIdentity, "step_10").refusal);

  run.allow_data_change = true;
  verdict = judge_continuation(other_data, run, kIdentity, "step_10");
  CHECK_FALSE(verdict.refusal);
  CHECK(mentions(verdict.warnings, "--allow-data-change"));
}

TEST_CASE(
    "what an older checkpoint does not record, and a changed seed or step count, are warned "
    "about") {
  const TrainConfig run = run_config();
  nlohmann::json old = saved_by(run);
  old.erase(kDataIdentityKey);
  old.erase("global_microbatches");  // falls back to --microbatches: one replica
  auto verdict = judge_continuation(old, run, kIdentity, "step_10");
  CHECK_FALSE(verdict.refusal);
  CHECK(mentions(verdict.warnings, "does not record --data"));

  TrainConfig reseeded = run;
  reseeded.seed = 8;
  reseeded.steps = 200;
  verdict = judge_continuation(saved_by(run), reseeded, kIdentity, "step_10");
  CHECK_FALSE(verdict.refusal);
  CHECK(mentions(verdict.warnings, "--seed 8"));
  CHECK(mentions(verdict.warnings, "--steps 200"));
}
