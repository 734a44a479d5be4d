// --val-data: the validation loss goes through the pipeline and does not depend on the
// number of stages; it scores the same windows as `conveyor eval --max-windows`.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "tests/integration/pipeline/pipeline_test_util.h"

using namespace conveyor::test;

TEST_CASE("the validation loss is the same bits on 1, 2 and 4 stages and matches eval",
          "[pipeline][validation]") {
  TempDir dir;
  const std::string val = (dir / "val.txt").string();
  write_file(val, read_file("/usr/share/games/fortunes/fortunes").substr(0, 4000));
  auto args = with(tiny_model_args({.layers = 4, .microbatches = 2, .micro_batch_size = 3}),
                   {"--steps", "4", "--val-data", val, "--eval-every", "2", "--val-windows", "7"});
  std::vector<std::string> reference;
  for (int stages : {1, 2, 4}) {
    const std::string metrics = (dir / ("m" + std::to_string(stages))).string();
    auto run_args = with(args, {"--metrics", metrics});
    if (stages == 1) run_args = with(run_args, {"--ckpt-dir", (dir / "ckpt").string()});
    auto r = train_on(stages, run_args);
    INFO(stages << " stage(s)\n" << r.output);
    REQUIRE(r.exit_code == 0);
    const auto losses = field_texts(metrics, "val_loss");
    REQUIRE(losses.size() == 2);  // after steps 2 and 4
    if (reference.empty()) reference = losses;
    CHECK(losses == reference);
  }
  // The same 7 windows through `conveyor eval` (batches of 16 there, of 3 here).
  auto eval = run_conveyor(
      {"eval", "--ckpt", (dir / "ckpt").string(), "--data", val, "--max-windows", "7"});
  INFO(eval.output);
  REQUIRE(eval.exit_code == 0);
  const auto json = nlohmann::json::parse(eval.output.substr(eval.output.rfind('{')));
  CHECK(json["loss"].get<double>() == Approx(std::stod(reference.back())).epsilon(1e-6));
}
