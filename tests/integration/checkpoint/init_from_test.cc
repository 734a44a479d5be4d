// Weights in and out (interop/): a checkpoint exported as a Hugging Face folder and as an llm.c
// file evaluates to the same loss bits through each format, starts training runs that are
// bit-identical to starting from the checkpoint itself, and a file written by an independent
// llm.c writer (llmc_writer.py) imports to the same weights. Bad files exit 2 naming why.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "tests/integration/checkpoint/train_helpers.h"

using namespace conveyor::test;
using namespace conveyor::test::ckpt;

namespace {

// The mean loss `conveyor eval --ckpt WEIGHTS` prints (a double: equal values, equal bits).
double eval_loss(const std::string& weights, const std::string& data) {
  auto r = run_conveyor({"eval", "--ckpt", weights, "--data", data, "--max-windows", "8"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto end = r.output.find_last_not_of('\n');
  const auto begin = r.output.rfind('\n', end);
  const auto line = r.output.substr(begin == std::string::npos ? 0 : begin + 1);
  return nlohmann::json::parse(line).at("loss").get<double>();
}

struct Exported {
  TempDir dir;
  std::string ckpt, hf, llmc, data;
};

// A 2-stage checkpoint after 6 steps, and its two exports.
const Exported& exported() {
  static Exported x;  // removed at exit, with its TempDir
  static const bool ready = [] {
    x.data = (x.dir / "text.txt").string();
    std::string text;
    for (int i = 0; i < 400; ++i) text += fmt::format("line {} of the corpus, {}\n", i, i * i);
    write_file(x.data, text);
    x.ckpt = (x.dir / "ckpt").string();
    auto trained = train(2, {"--steps", "6", "--data", x.data, "--ckpt-dir", x.ckpt});
    REQUIRE(trained.exit_code == 0);
    x.hf = (x.dir / "hf").string();
    x.llmc = (x.dir / "gpt2.bin").string();
    REQUIRE(run_conveyor({"ckpt", "export", "--format", "hf", x.ckpt, x.hf}).exit_code == 0);
    REQUIRE(run_conveyor({"ckpt", "export", "--format", "llmc", x.ckpt, x.llmc}).exit_code == 0);
    return true;
  }();
  (void)ready;
  return x;
}

}  // namespace

TEST_CASE("the exports evaluate to the checkpoint's loss bits", "[checkpoint][interop]") {
  const auto& e = exported();
  const double want = eval_loss(e.ckpt, e.data);
  CHECK(eval_loss(e.hf, e.data) == want);
  CHECK(eval_loss(e.hf + "/model.safetensors", e.data) == want);
  CHECK(eval_loss(e.llmc, e.data) == want);
}

TEST_CASE("init-from any format trains like init-from the checkpoint", "[checkpoint][interop]") {
  const auto& e = exported();
  TempDir dir;
  std::vector<std::vector<std::string>> runs;
  for (const auto& from : {e.ckpt, e.hf, e.llmc, std::string()}) {
    const auto metrics = (dir / fmt::format("m{}.jsonl", runs.size())).string();
    std::vector<std::string> extra = {"--steps", "3", "--data", e.data, "--metrics", metrics};
    if (!from.empty()) extra = with(extra, {"--init-from", from});
    auto r = train(1, extra);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    if (!from.empty()) CHECK(r.output.find("initial weights from") != std::string::npos);
    runs.push_back(loss_texts(metrics));
  }
  CHECK(runs[1] == runs[0]);
  CHECK(runs[2] == runs[0]);
  CHECK(runs[3] != runs[0]);  // from random weights: the import made a difference
}

TEST_CASE("an llm.c file from an independent writer imports to the same weights",
          "[checkpoint][interop]") {
  const auto& e = exported();
  TempDir dir;
  const auto theirs = (dir / "theirs.bin").string();
  auto w = run_program(
      {"/usr/bin/python3",
       std::string(CONVEYOR_SOURCE_DIR) + "/tests/integration/checkpoint/llmc_writer.py", e.hf,
       theirs});
  INFO(w.output);
  if (w.exit_code == 77 || w.exit_code == 127) {
    WARN("SKIPPED: /usr/bin/python3 with numpy is needed for the independent writer");
    return;
  }
  REQUIRE(w.exit_code == 0);
  CHECK(read_file(theirs) == read_file(e.llmc));
  CHECK(eval_loss(theirs, e.data) == eval_loss(e.ckpt, e.data));
}

TEST_CASE("weights of another shape or a damaged file exit 2 naming the problem",
          "[checkpoint][interop]") {
  const auto& e = exported();
  TempDir dir;
  auto refused = [&](const std::string& from, const std::vector<std::string>& flags,
                     const std::string& mention) {
    auto r = train(1, with({"--steps", "1", "--data", e.data, "--init-from", from}, flags));
    INFO(r.output);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find(mention) != std::string::npos);
  };
  refused(e.hf, {"--dim", "32"}, "is a model of another shape: --dim 16 (the run has 32)");
  const std::string bytes = read_file(e.llmc);
  write_file(dir / "cut.bin", bytes.substr(0, bytes.size() - 100));
  refused((dir / "cut.bin").string(), {}, "(truncated, or another format)");
  write_file(dir / "junk.bin", "not a model at all, just text");
  refused((dir / "junk.bin").string(), {}, "no llm.c magic");
  std::string v2 = bytes;
  v2[4] = 5;  // version 5: bf16, not read
  write_file(dir / "v5.bin", v2);
  refused((dir / "v5.bin").string(), {}, "version 5; conveyor reads the fp32 versions 1 and 3");
  // An HF folder whose file lacks a tensor.
  const auto hf_cut = dir / "hf_cut";
  std::filesystem::create_directories(hf_cut);
  std::filesystem::copy_file(e.hf + "/config.json", hf_cut / "config.json");
  write_file(hf_cut / "model.safetensors", read_file(e.hf + "/model.safetensors").substr(0, 100));
  refused(hf_cut.string(), {}, "is not a valid safetensors file");
  refused((dir / "missing").string(), {}, "does not exist");
}
