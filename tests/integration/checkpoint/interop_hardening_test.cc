// Weights and checkpoints from outside, through the real binary (issue 22):
// - a Hugging Face tensor whose header shape is wrong but whose element count matches (D07);
// - out-of-range numbers in config.json and in a manifest's saved model (D30);
// - a manifest that omits an optimizer-moment dataset: verify refuses it, resuming falls
//   back past it (D18);
// - model.safetensors, config.json or an llm.c file that is a FIFO or a folder (D10, D20);
// - `ckpt export` onto a path of the wrong kind (D21).
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "interop/safetensors.h"
#include "tests/integration/checkpoint/train_helpers.h"

namespace fs = std::filesystem;
using namespace conveyor::test;
using namespace conveyor::test::ckpt;
using nlohmann::json;

namespace {

struct Trained {
  TempDir dir;
  std::string ckpt, hf, data;
};

// A 1-stage checkpoint of the tiny model (d 16, 4 blocks) and its Hugging Face export.
const Trained& trained() {
  static Trained x;
  static const bool ready = [] {
    x.data = (x.dir / "text.txt").string();
    std::string text;
    for (int i = 0; i < 200; ++i) text += "a line of text for the tiny model, " + std::to_string(i);
    write_file(x.data, text);
    x.ckpt = (x.dir / "ckpt").string();
    require_ok(train(1, {"--steps", "2", "--data", x.data, "--ckpt-dir", x.ckpt}));
    x.hf = (x.dir / "hf").string();
    require_ok(run_conveyor({"ckpt", "export", "--format", "hf", x.ckpt, x.hf}));
    return true;
  }();
  (void)ready;
  return x;
}

RunResult eval(const std::string& weights) {
  return run_conveyor({"eval", "--ckpt", weights, "--data", trained().data, "--max-windows", "1"},
                      {}, 60);
}

// A copy of the export whose model.safetensors has tensor `name` with header shape `shape`
// (same values, same bytes).
fs::path with_shape(const fs::path& to, const std::string& name,
                    const std::vector<int64_t>& shape) {
  fs::create_directories(to);
  fs::copy_file(trained().hf + "/config.json", to / "config.json");
  conveyor::checkpoint::SafetensorsFile file(trained().hf + "/model.safetensors");
  std::vector<std::vector<float>> values;
  for (const auto& n : file.names()) values.push_back(file.values(n));
  std::vector<conveyor::checkpoint::SafetensorsEntry> entries;
  for (size_t i = 0; i < values.size(); ++i) {
    const auto& n = file.names()[i];
    entries.push_back({n, n == name ? shape : file.shape(n), values[i]});
  }
  conveyor::checkpoint::write_safetensors(to / "model.safetensors", entries);
  return to;
}

void expect_usage_error(const RunResult& r, const std::vector<std::string>& mentions) {
  INFO(r.output);
  CHECK(r.exit_code == 2);
  for (const auto& m : mentions) CHECK_THAT(r.output, Catch::Contains(m));
}

}  // namespace

TEST_CASE("an HF tensor with the right count but the wrong shape is refused naming it",
          "[checkpoint][interop][hardening]") {
  TempDir dir;
  // c_attn is a Conv1D: stored [in, out] = [16, 48]. [48, 16] has the same count.
  const auto swapped = with_shape(dir / "swapped", "transformer.h.1.attn.c_attn.weight", {48, 16});
  expect_usage_error(eval(swapped.string()), {"transformer.h.1.attn.c_attn.weight",
                                              "model.safetensors", "[16, 48]", "[48, 16]"});
  const auto flat = with_shape(dir / "flat", "transformer.wpe.weight", {256});
  expect_usage_error(eval(flat.string()), {"transformer.wpe.weight", "[16, 16]", "[256]"});
  // The export itself is read.
  require_ok(eval(trained().hf));
}

TEST_CASE("config.json numbers out of range are refused, never wrapped",
          "[checkpoint][interop][hardening]") {
  TempDir dir;
  const auto hf = dir / "hf";
  fs::create_directories(hf);
  fs::copy_file(trained().hf + "/model.safetensors", hf / "model.safetensors");
  auto config = json::parse(read_file(trained().hf + "/config.json"));
  config["n_layer"] = 4294967298;  // 2^32 + 2: an int cast reads it as 2
  write_file(hf / "config.json", config.dump());
  expect_usage_error(eval(hf.string()), {"n_layer", "4294967298"});
  config["n_layer"] = 4;
  config["n_embd"] = 16.5;
  write_file(hf / "config.json", config.dump());
  expect_usage_error(eval(hf.string()), {"n_embd", "16.5"});
}

TEST_CASE("a manifest's saved model with out-of-range numbers is refused, never wrapped",
          "[checkpoint][interop][hardening]") {
  TempDir dir;
  const auto root = dir / "ckpt";
  fs::copy(trained().ckpt, root, fs::copy_options::recursive);
  const auto step = root / read_file(root / "LATEST").substr(0, 14);
  auto m = json::parse(read_file(step / "manifest.json"));
  m["config"]["model"]["layers"] = 1e10;
  write_file(step / "manifest.json", m.dump(1));
  for (const auto& r : {run_conveyor({"ckpt", "verify", root.string()}), eval(root.string())}) {
    expect_usage_error(r, {"layers"});
    CHECK_THAT(r.output, !Catch::Contains("-2147483648"));
  }
}

TEST_CASE("a manifest without an optimizer-moment dataset fails verify and resuming skips it",
          "[checkpoint][consistency][hardening]") {
  TempDir dir;
  const auto root = dir / "ckpt";
  const std::vector<std::string> run = {"--steps", "4", "--save-every", "2",
                                        "--keep",  "0", "--ckpt-dir",   root.string()};
  require_ok(train(1, run));
  const auto step = root / "step_000000004";
  auto m = json::parse(read_file(step / "manifest.json"));
  const std::string dataset = "/optim/exp_avg_sq/layers.002.mlp.fc.weight";
  REQUIRE(m["shards"][0]["datasets"].erase(dataset) == 1);
  write_file(step / "manifest.json", m.dump(1));

  expect_usage_error(run_conveyor({"ckpt", "verify", root.string()}), {"step_000000004", dataset});
  expect_usage_error(run_conveyor({"ckpt", "verify", "--quick", root.string()}), {dataset});
  auto resumed =
      train(1, {"--steps", "6", "--save-every", "2", "--keep", "0", "--ckpt-dir", root.string()});
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.output,
             Catch::Contains("skipping checkpoint") && Catch::Contains(dataset) &&
                 Catch::Contains("resumed from " + (root / "step_000000002").string()));
}

TEST_CASE("weights files that are FIFOs or folders are refused at once, exit 2",
          "[checkpoint][interop][hardening]") {
  TempDir dir;
  const auto hf = dir / "hf";
  fs::create_directories(hf);
  fs::copy_file(trained().hf + "/config.json", hf / "config.json");
  REQUIRE(::mkfifo((hf / "model.safetensors").c_str(), 0600) == 0);
  expect_usage_error(eval(hf.string()), {"model.safetensors", "FIFO"});
  expect_usage_error(eval((hf / "model.safetensors").string()), {"model.safetensors", "FIFO"});
  fs::remove(hf / "model.safetensors");
  fs::create_directory(hf / "model.safetensors");
  expect_usage_error(eval(hf.string()), {"model.safetensors", "folder"});
  fs::remove(hf / "model.safetensors");
  fs::copy_file(trained().hf + "/model.safetensors", hf / "model.safetensors");
  fs::remove(hf / "config.json");
  REQUIRE(::mkfifo((hf / "config.json").c_str(), 0600) == 0);
  expect_usage_error(eval(hf.string()), {"config.json", "FIFO"});
  // An llm.c file given as a FIFO.
  REQUIRE(::mkfifo((dir / "gpt2.bin").c_str(), 0600) == 0);
  expect_usage_error(eval((dir / "gpt2.bin").string()), {"gpt2.bin", "FIFO"});
}

TEST_CASE("ckpt export onto a path of the wrong kind is a usage error naming it",
          "[checkpoint][interop][hardening]") {
  TempDir dir;
  write_file(dir / "a_file", "keep me");
  auto hf =
      run_conveyor({"ckpt", "export", "--format", "hf", trained().ckpt, (dir / "a_file").string()});
  expect_usage_error(hf, {(dir / "a_file").string(), "folder"});
  CHECK(read_file(dir / "a_file") == "keep me");
  fs::create_directory(dir / "a_dir");
  auto llmc = run_conveyor(
      {"ckpt", "export", "--format", "llmc", trained().ckpt, (dir / "a_dir").string()});
  expect_usage_error(llmc, {(dir / "a_dir").string(), "file"});
  REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
  auto fifo =
      run_conveyor({"ckpt", "export", "--format", "llmc", trained().ckpt, (dir / "fifo").string()});
  expect_usage_error(fifo, {(dir / "fifo").string(), "FIFO"});
  // Links planted where an hf export writes its files are replaced, never written through.
  write_file(dir / "victim", "untouched");
  fs::create_directory(dir / "out");
  fs::create_symlink(dir / "victim", dir / "out" / "config.json");
  fs::create_symlink(dir / "victim", dir / "out" / "model.safetensors");
  require_ok(
      run_conveyor({"ckpt", "export", "--format", "hf", trained().ckpt, (dir / "out").string()}));
  CHECK(read_file(dir / "victim") == "untouched");
  CHECK(is_regular_file(fs::symlink_status(dir / "out" / "config.json")));
  require_ok(eval((dir / "out").string()));
}
