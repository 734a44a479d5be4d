// The acceptance test of multi-stage training: on the CPU backend, 1, 2 and 4 stages with
// every schedule give bit-identical losses at every step, and the same final parameters and
// optimizer state (checked tensor by tensor through the checksums of a final checkpoint).
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "tests/integration/pipeline/pipeline_test_util.h"

using namespace conveyor::test;

namespace {

// Every parameter and Adam moment of the step that LATEST names in checkpoint root `ckpt`:
// dataset path ("/params/wte.weight", "/optim/exp_avg/...") -> the manifest's checksum (xxh3
// of the stored bytes) of each copy of it. Equal maps are bit-identical states.
std::map<std::string, std::set<std::string>> tensor_checksums(const std::filesystem::path& ckpt) {
  const std::string latest = read_file(ckpt / "LATEST");
  const auto manifest = nlohmann::json::parse(
      read_file(ckpt / latest.substr(0, latest.find('\n')) / "manifest.json"));
  std::map<std::string, std::set<std::string>> out;
  for (const auto& shard : manifest.at("shards")) {
    for (const auto& [path, info] : shard.at("datasets").items()) {
      if (path.rfind("/params/", 0) == 0 || path.rfind("/optim/", 0) == 0)
        out[path].insert(info.at("xxh3").get<std::string>());
    }
  }
  return out;
}

// 8 layers so that 4 stages x 2 virtual stages still get one layer per piece; 4
// micro-batches so that interleaved runs at 2 and 4 stages (m % p == 0).
std::vector<std::string> tiny_args() {
  auto args = tiny_model_args({.layers = 8, .microbatches = 4, .micro_batch_size = 2});
  args.insert(args.end(), {"--steps", "20"});
  return args;
}

struct Layout {
  int stages;
  std::string schedule;
  int virtual_stages;
  int warmup_per_hop = 1;
};

}  // namespace

TEST_CASE("1, 2 and 4 stages with every schedule give bit-identical losses", "[pipeline]") {
  TempDir dir;
  const auto base_path = (dir / "base.jsonl").string();
  auto base = train_on(1, with(tiny_args(), {"--metrics", base_path}));
  INFO(base.output);
  REQUIRE(base.exit_code == 0);
  const auto expected = loss_texts(base_path);
  REQUIRE(expected.size() == 20);
  REQUIRE(expected.front() != expected.back());  // it trained: the comparison means something

  const std::vector<Layout> layouts = {
      {2, "gpipe", 1},   {2, "1f1b", 1},     {2, "zb-h1", 1},      {2, "interleaved", 2},
      {4, "gpipe", 1},   {4, "1f1b", 1},     {4, "zb-h1", 1},      {4, "interleaved", 2},
      {2, "1f1b", 1, 3}, {4, "zb-h1", 1, 2},  // a deeper warm-up for a slow link
      {2, "zb-v", 2},    {4, "zb-v", 2},     {2, "dualpipe-v", 2},  // V placement
  };
  for (const auto& l : layouts) {
    const auto path =
        (dir / fmt::format("{}-{}-{}.jsonl", l.schedule, l.stages, l.warmup_per_hop)).string();
    auto r = train_on(l.stages,
                      with(tiny_args(), {"--schedule", l.schedule, "--virtual-stages",
                                         std::to_string(l.virtual_stages), "--warmup-per-hop",
                                         std::to_string(l.warmup_per_hop), "--metrics", path}));
    INFO(l.stages << " stages, " << l.schedule << ", warm-up per hop " << l.warmup_per_hop << "\n"
                  << r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(loss_texts(path) == expected);
  }
}

TEST_CASE("dualpipe-v on 4 stages gives the 1-stage run's losses", "[pipeline]") {
  // dualpipe-v needs 2 x 4 micro-batches; the 1-stage run has the same global batch.
  TempDir dir;
  const auto args = with(tiny_model_args({.layers = 8, .microbatches = 8, .micro_batch_size = 1}),
                         {"--steps", "10"});
  auto base = train_on(1, with(args, {"--metrics", (dir / "base.jsonl").string()}));
  INFO(base.output);
  REQUIRE(base.exit_code == 0);
  const auto expected = loss_texts((dir / "base.jsonl").string());
  REQUIRE(expected.size() == 10);
  auto four = train_on(
      4, with(args, {"--schedule", "dualpipe-v", "--metrics", (dir / "four.jsonl").string()}));
  INFO(four.output);
  REQUIRE(four.exit_code == 0);
  CHECK(loss_texts((dir / "four.jsonl").string()) == expected);
}

TEST_CASE("1 and 4 stages end with the same parameters and Adam moments", "[pipeline]") {
  TempDir dir;
  const auto args = with(tiny_args(), {"--steps", "10", "--lr", "1e-2", "--warmup", "2"});
  auto one = train_on(1, with(args, {"--ckpt-dir", (dir / "one").string()}));
  INFO(one.output);
  REQUIRE(one.exit_code == 0);
  const auto expected = tensor_checksums(dir / "one");
  REQUIRE(expected.count("/params/wte.weight") == 1);
  REQUIRE(expected.count("/optim/exp_avg_sq/layers.007.mlp.proj.bias") == 1);
  for (const auto& [path, copies] : expected) REQUIRE(copies.size() == 1);

  // Interleaved puts the embedding, the head and the layers on different stages and chunks;
  // the tied embedding is saved twice (first and last stage), and both copies must match.
  auto four = train_on(4, with(args, {"--schedule", "interleaved", "--virtual-stages", "2",
                                      "--ckpt-dir", (dir / "four").string()}));
  INFO(four.output);
  REQUIRE(four.exit_code == 0);
  CHECK(tensor_checksums(dir / "four") == expected);

  // A different seed trains a different model: the checksums tell models apart.
  auto other = train_on(1, with(args, {"--seed", "7", "--ckpt-dir", (dir / "other").string()}));
  REQUIRE(other.exit_code == 0);
  CHECK(tensor_checksums(dir / "other") != expected);
}
