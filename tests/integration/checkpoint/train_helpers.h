// Helpers for the checkpoint integration tests: run a tiny real training job on 1..N stages,
// read its per-step losses, and compare the parameters and optimizer state of two
// checkpoints bit for bit.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "common/error.h"
#include "tests/test_util.h"

namespace conveyor::test::ckpt {

// A tiny model (4 blocks, so 4 stages get one each) that trains 20 steps in about a second.
inline std::vector<std::string> tiny_model() {
  auto args = tiny_model_args({.layers = 4, .microbatches = 4, .micro_batch_size = 2});
  args.insert(args.end(), {"--threads", "1"});
  return args;
}

// The arguments of `conveyor train` on `stages` stages (through `conveyor launch` when more
// than one) with the tiny model, --steps 20 unless `extra` sets it, then `extra`.
inline std::vector<std::string> train_args(int stages, const std::vector<std::string>& extra) {
  std::vector<std::string> args;
  if (stages > 1) args = {"launch", "--nproc", std::to_string(stages), "--", "conveyor"};
  args.push_back("train");
  args.push_back("--stages");
  args.push_back(std::to_string(stages));
  for (const auto& a : tiny_model()) args.push_back(a);
  if (std::find(extra.begin(), extra.end(), "--steps") == extra.end()) {
    args.push_back("--steps");
    args.push_back("20");
  }
  for (const auto& a : extra) args.push_back(a);
  return args;
}

// Requires a run to have exited 0, showing its output when it did not.
inline void require_ok(const RunResult& r) {
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
}

// Runs train_args(stages, extra).
inline RunResult train(int stages, const std::vector<std::string>& extra,
                       const std::vector<std::string>& env = {}) {
  return run_conveyor(train_args(stages, extra), env, 60);
}

// The raw text of each step's loss in a metrics file: %.9g round-trips the float, so equal
// text means equal bits.
inline std::vector<std::string> losses(const std::filesystem::path& metrics) {
  std::vector<std::string> out;
  std::ifstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    const auto at = line.find("\"loss\": ");
    REQUIRE(at != std::string::npos);
    out.push_back(line.substr(at + 8, line.find(',', at) - at - 8));
  }
  return out;
}

inline std::string latest(const std::filesystem::path& root) {
  std::string s = read_file(root / "LATEST");
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// Every /params, /optim/exp_avg and /optim/exp_avg_sq tensor of a committed step, read by
// parameter name through CheckpointReader (which verifies each checksum as it reads).
using Tensors = std::map<std::string, std::vector<float>>;
inline Tensors read_all(const std::filesystem::path& step_dir) {
  checkpoint::CheckpointReader reader(step_dir);
  Tensors out;
  for (const auto& [name, loc] : reader.manifest().params) {
    const size_t n = checkpoint::element_count(loc.shape);
    for (const char* group : {checkpoint::kParams, checkpoint::kExpAvg, checkpoint::kExpAvgSq}) {
      auto& v = out[std::string(group) + "/" + name];
      v.resize(n);
      reader.read(group, name, v.data(), n);
    }
  }
  // Copies held by two shards (the tied embedding) must be bit-identical too.
  for (const auto& [name, loc] : reader.manifest().params) {
    for (int s : loc.shards) {
      for (const char* group : {"/params/", "/optim/exp_avg/", "/optim/exp_avg_sq/"}) {
        const auto& a = reader.manifest().shards[loc.shard].datasets.at(group + name);
        const auto& b = reader.manifest().shards[s].datasets.at(group + name);
        INFO(group << name << " shard " << loc.shard << " vs " << s);
        CHECK(a.xxh3 == b.xxh3);
      }
    }
  }
  return out;
}

// Bitwise equality of two tensor sets, naming the first tensor that differs.
inline void require_bit_identical(const Tensors& a, const Tensors& b) {
  REQUIRE(a.size() == b.size());
  REQUIRE(!a.empty());
  for (const auto& [name, va] : a) {
    INFO("tensor " << name);
    REQUIRE(b.count(name) == 1);
    const auto& vb = b.at(name);
    REQUIRE(va.size() == vb.size());
    REQUIRE(std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0);
  }
}

}  // namespace conveyor::test::ckpt
