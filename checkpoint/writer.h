// Writing one rank's shard of a checkpoint step. Knows parameter names, shapes and float
// buffers; nothing about processes or transports. Several processes (one per rank) call
// these concurrently on the same step; they agree on the temporary directory by its name.
//
//   auto tmp = begin_step(root, step);     // every rank
//   write_shard(tmp, contents);            // every rank, its own shard
//   <barrier>                              // the caller's job
//   commit_step(root, step, ...);          // one process (commit.h)
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/manifest.h"

namespace conveyor::checkpoint {

// A tensor to write; `data` is borrowed and must hold product(shape) floats until
// write_shard() returns.
struct TensorRef {
  std::string name;  // global parameter name, e.g. "layers.007.attn.qkv.weight"; no '/'
  std::vector<int64_t> shape;
  const float* data = nullptr;
};

struct ShardContents {
  int64_t step = 0;
  int shard = 0;       // the writing rank; names the file (stage_NNNNN.h5)
  int num_shards = 1;  // the world size
  std::vector<TensorRef> params;
  // Adam moments: either empty (no optimizer state) or the same names and shapes as params.
  std::vector<TensorRef> exp_avg, exp_avg_sq;
  // Opaque training state (step, sampler position, lr state, seed, config): stored as the
  // string dataset /state/json; /state/step repeats `step` for h5dump readers.
  nlohmann::json state = nlohmann::json::object();
};

// Creates root and <root>/.tmp-step_NNNNNNNNN (idempotent; safe to call from every process at
// once) and returns the temporary directory. Throws Error(kRuntime) if it cannot.
std::filesystem::path begin_step(const std::filesystem::path& root, int64_t step);

// Writes <tmp_dir>/stage_NNNNN.h5 (under a ".part" name, fsynced, then renamed) and its
// sidecar <tmp_dir>/stage_NNNNN.json holding the returned ShardInfo, so the committer can
// build the manifest without gathering anything. Blocking; thread-safe for different shards.
// Throws Error(kUsage) for invalid contents (bad names, mismatched optimizer lists, null data)
// and Error(kRuntime) for I/O failures, naming the file.
ShardInfo write_shard(const std::filesystem::path& tmp_dir, const ShardContents& contents);

}  // namespace conveyor::checkpoint
