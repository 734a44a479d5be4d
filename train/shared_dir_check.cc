#include "train/shared_dir_check.h"

#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "checkpoint/file_util.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/net.h"

namespace conveyor::pipeline {

namespace {

// Hidden, so data reading skips it; the directory lock keeps other jobs from writing it.
constexpr const char* kCheckFile = ".shared-check";

// The file's content, or empty when this rank cannot read it (it does not see the directory).
std::string content_or_empty(const std::filesystem::path& path) {
  try {
    return read_input_file(path);
  } catch (const Error&) {
    return {};
  }
}

}  // namespace

void require_shared_directory(const std::string& dir, transport::Transport& transport,
                              int coordinator_rank, Deadline deadline) {
  const int rank = transport.rank();
  const auto path = std::filesystem::path(dir) / kCheckFile;
  std::vector<uint8_t> nonce;
  if (rank == coordinator_rank) {
    std::random_device random;
    const std::string text =
        fmt::format("{:08x}{:08x}{:08x}{:08x}", random(), random(), random(), random());
    checkpoint::write_file_atomic(path, text);
    nonce.assign(text.begin(), text.end());
  }
  transport.broadcast(nonce, coordinator_rank, deadline);
  const bool sees = content_or_empty(path) == std::string(nonce.begin(), nonce.end());
  std::vector<double> blind(static_cast<size_t>(transport.world_size()), 0.0);
  blind[static_cast<size_t>(rank)] = sees ? 0.0 : 1.0;
  blind = transport.all_reduce_sum(blind, deadline);  // also: everyone has read it
  if (rank == coordinator_rank) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
  std::vector<std::string> who;
  for (int r = 0; r < transport.world_size(); ++r) {
    if (blind[static_cast<size_t>(r)] == 0.0) continue;
    std::vector<uint8_t> host;
    if (r == rank) {
      const std::string h = host_name();
      host.assign(h.begin(), h.end());
    }
    transport.broadcast(host, r, deadline);
    who.push_back(fmt::format("rank {} (host {})", r, std::string(host.begin(), host.end())));
  }
  if (who.empty()) return;
  throw Error(
      ErrorKind::kUsage,
      fmt::format("--ckpt-dir {} is not the same directory on every host: {} {} not see "
                  "the file rank {} wrote there",
                  dir, fmt::join(who, ", "), who.size() == 1 ? "does" : "do", coordinator_rank),
      "checkpoints of a multi-host job need a file system every host shares (NFS, "
      "Lustre, ...), mounted at the same path on each");
}

}  // namespace conveyor::pipeline
