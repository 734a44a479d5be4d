// options_from_env: the launch environment (torchrun-style, Slurm, Open MPI) -> Options.
#include <cstdlib>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "common/error.h"
#include "transport/hostlist.h"
#include "transport/transport.h"

namespace conveyor::transport {
namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

long parse_int(const std::string& name, const std::string& text, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text.c_str(), &end, 10);
  CONVEYOR_REQUIRE(errno == 0 && end != text.c_str() && *end == '\0' && v >= lo && v <= hi,
                   "environment variable {}='{}' is not an integer in [{}, {}]", name, text, lo,
                   hi);
  return v;
}

double parse_seconds(const std::string& name, const std::string& text) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  CONVEYOR_REQUIRE(end != text.c_str() && *end == '\0' && v > 0,
                   "environment variable {}='{}' is not a positive number of seconds", name, text);
  return v;
}

// The first of `names` that is set, with its name.
std::optional<std::pair<std::string, std::string>> first_set(
    std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (auto v = env(n)) return std::make_pair(std::string(n), *v);
  }
  return std::nullopt;
}

}  // namespace

Options options_from_env(std::string fingerprint) {
  Options o;
  o.fingerprint = std::move(fingerprint);
  // torchrun names first: a launcher that sets them means them, even inside Slurm.
  auto rank = first_set({"RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK"});
  auto size = first_set({"WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"});
  CONVEYOR_REQUIRE(rank.has_value() == size.has_value(),
                   "{} is set but no world size is (set WORLD_SIZE, or RANK together with it)",
                   rank ? rank->first : size->first);
  if (size) {
    o.world_size = static_cast<int>(parse_int(size->first, size->second, 1, 16383));
    o.world_size_from = size->first;
    o.rank = static_cast<int>(parse_int(rank->first, rank->second, 0, 16382));
    CONVEYOR_REQUIRE(o.rank < o.world_size, "{}={} is not below {}={}", rank->first, o.rank,
                     size->first, o.world_size);
  }
  if (auto local = first_set({"LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK"}))
    o.local_rank = static_cast<int>(parse_int(local->first, local->second, 0, 16382));
  if (auto a = env("MASTER_ADDR")) {
    o.master_addr = *a;
  } else if (rank && rank->first == "SLURM_PROCID") {
    // Under srun, task 0 runs on the first node of the allocation.
    if (auto list = first_set({"SLURM_JOB_NODELIST", "SLURM_NODELIST"})) {
      try {
        o.master_addr = expand_hostlist(list->second).front();
      } catch (const Error& e) {
        throw Error(ErrorKind::kUsage, fmt::format("{}: {}", list->first, e.message()),
                    "set MASTER_ADDR to rank 0's host instead");
      }
    }
  }
  if (auto p = env("CONVEYOR_RDZV_PORT")) {
    o.master_port = static_cast<int>(parse_int("CONVEYOR_RDZV_PORT", *p, 1, 65535));
  } else if (auto p = env("MASTER_PORT")) {
    o.master_port = static_cast<int>(parse_int("MASTER_PORT", *p, 1, 65535));
    // torchrun's agent on the first node holds MASTER_PORT (its TCPStore).
    if (env("TORCHELASTIC_RUN_ID")) {
      CONVEYOR_REQUIRE(o.master_port < 65535,
                       "MASTER_PORT=65535 under torchrun leaves no port for conveyor's "
                       "rendezvous; set CONVEYOR_RDZV_PORT");
      ++o.master_port;
    }
  }
  if (auto t = env("CONVEYOR_JOB_TOKEN")) o.job_token = *t;
  CONVEYOR_REQUIRE(o.world_size == 1 || !o.job_token.empty(),
                   "CONVEYOR_JOB_TOKEN is not set for a {}-rank job; every rank needs the same "
                   "secret token (conveyor launch sets it; otherwise export the same random "
                   "string on every rank)",
                   o.world_size);
  if (auto t = env("CONVEYOR_CONNECT_TIMEOUT"))
    o.connect_timeout_s = parse_seconds("CONVEYOR_CONNECT_TIMEOUT", *t);
  if (auto t = env("CONVEYOR_HEARTBEAT_TIMEOUT"))
    o.heartbeat_timeout_s = parse_seconds("CONVEYOR_HEARTBEAT_TIMEOUT", *t);
  if (auto m = env("CONVEYOR_UCX_PEER_ERROR_MODE")) {
    CONVEYOR_REQUIRE(*m == "0" || *m == "1", "CONVEYOR_UCX_PEER_ERROR_MODE='{}' must be 0 or 1",
                     *m);
    o.ucx_peer_error_mode = *m == "1";
  }
  if (auto f = env("CONVEYOR_FAILURE_REPORT_FD"))
    o.failure_report_fd = static_cast<int>(parse_int("CONVEYOR_FAILURE_REPORT_FD", *f, 0, 65535));
  return o;
}

}  // namespace conveyor::transport
