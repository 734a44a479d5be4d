// `conveyor eval` against an independent numpy GPT-2 forward pass (gpt2_eval_reference.py)
// that reads the checkpoint's shards with h5py: same mean cross-entropy within 1e-4 relative.
// The checkpoint is written by 2 stages, so the parameters are spread over two shard files
// and the tied embedding appears in both.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "tests/integration/checkpoint/train_helpers.h"

namespace fs = std::filesystem;
using namespace conveyor::test;
using namespace conveyor::test::ckpt;

namespace {

// Deterministic English-like text with enough variety to give a non-trivial loss.
std::string sample_text() {
  const char* words[] = {"the ",   "pipeline ", "stage ", "sends ",    "gradients ", "back, ",
                         "while ", "tokens ",   "flow ",  "forward. ", "Each ",      "batch\n"};
  std::string s;
  uint32_t x = 12345;
  while (s.size() < 8192) {
    x = x * 1664525u + 1013904223u;
    s += words[(x >> 16) % 12];
  }
  return s;
}

nlohmann::json last_json_line(const std::string& output) {
  const auto end = output.find_last_not_of('\n');
  const auto begin = output.rfind('\n', end);
  return nlohmann::json::parse(
      output.substr(begin == std::string::npos ? 0 : begin + 1,
                    end - (begin == std::string::npos ? 0 : begin + 1) + 1));
}

}  // namespace

TEST_CASE("conveyor eval matches a numpy GPT-2 forward over the checkpoint's shards",
          "[checkpoint][eval]") {
  TempDir dir;
  const auto data = dir / "text.txt";
  write_file(data, sample_text());
  const auto root = dir / "ckpt";
  auto trained = train(2, {"--steps", "6", "--data", data.string(), "--ckpt-dir", root.string()});
  INFO(trained.output);
  REQUIRE(trained.exit_code == 0);
  const auto step = root / "step_000000006";

  const int windows = 8;
  auto ours = run_conveyor({"eval", "--ckpt", root.string(), "--data", data.string(),
                            "--max-windows", std::to_string(windows)});
  INFO(ours.output);
  REQUIRE(ours.exit_code == 0);
  const auto got = last_json_line(ours.output);

  // Debian's python3 (numpy + h5py); the python3 first on PATH may lack h5py.
  auto ref = run_program(
      {"/usr/bin/python3",
       std::string(CONVEYOR_SOURCE_DIR) + "/tests/integration/checkpoint/gpt2_eval_reference.py",
       step.string(), data.string(), std::to_string(windows)});
  INFO(ref.output);
  if (ref.exit_code == 77 || ref.exit_code == 127) {
    WARN("SKIPPED: /usr/bin/python3 with numpy and h5py is needed for the reference: "
         << ref.output);
    return;
  }
  REQUIRE(ref.exit_code == 0);
  const auto want = last_json_line(ref.output);

  CHECK(got["windows"] == windows);
  CHECK(got["tokens"] == want["tokens"]);
  CHECK(got["windows"] == want["windows"]);
  const double a = got["loss"], b = want["loss"];
  INFO("conveyor " << a << " numpy " << b);
  CHECK(std::isfinite(a));
  CHECK(a > 0.5);  // a trained-for-6-steps byte model is far from perfect: a real comparison
  CHECK(std::abs(a - b) <= 1e-4 * std::abs(b));
}

TEST_CASE("a Hugging Face export scores like conveyor eval and is the same from any stage count",
          "[checkpoint][eval][interop]") {
  TempDir dir;
  const auto data = dir / "text.txt";
  write_file(data, sample_text());
  for (int stages : {1, 2}) {
    const auto root = dir / fmt::format("ckpt{}", stages);
    auto trained =
        train(stages, {"--steps", "6", "--data", data.string(), "--ckpt-dir", root.string()});
    INFO(trained.output);
    REQUIRE(trained.exit_code == 0);
    auto exported = run_conveyor({"ckpt", "export", "--format", "hf", root.string(),
                                  (dir / fmt::format("hf{}", stages)).string()});
    INFO(exported.output);
    REQUIRE(exported.exit_code == 0);
  }
  // Training is bit-identical across stage counts, and the export reads by name.
  CHECK(read_file(dir / "hf1" / "model.safetensors") ==
        read_file(dir / "hf2" / "model.safetensors"));
  const auto config = nlohmann::json::parse(read_file(dir / "hf2" / "config.json"));
  CHECK(config["model_type"] == "gpt2");
  CHECK(config["n_layer"] == 4);
  CHECK(config["vocab_size"] == 256);
  CHECK(config["activation_function"] == "gelu_new");

  const int windows = 8;
  auto ours = run_conveyor({"eval", "--ckpt", (dir / "ckpt2").string(), "--data", data.string(),
                            "--max-windows", std::to_string(windows)});
  REQUIRE(ours.exit_code == 0);
  auto ref = run_program(
      {"/usr/bin/python3",
       std::string(CONVEYOR_SOURCE_DIR) + "/tests/integration/checkpoint/gpt2_eval_reference.py",
       "--hf", (dir / "hf2").string(), data.string(), std::to_string(windows)});
  INFO(ref.output);
  if (ref.exit_code == 77 || ref.exit_code == 127) {
    WARN("SKIPPED: /usr/bin/python3 with numpy is needed for the reference: " << ref.output);
    return;
  }
  REQUIRE(ref.exit_code == 0);
  const double a = last_json_line(ours.output)["loss"], b = last_json_line(ref.output)["loss"];
  INFO("conveyor " << a << " numpy over the HF folder " << b);
  CHECK(std::abs(a - b) <= 1e-5 * std::abs(b));
}
