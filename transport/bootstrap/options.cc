// options_from_env: the launch environment (torchrun-style, Slurm, Open MPI) -> Options.
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "common/checked_number.h"
#include "common/error.h"
#include "common/launch_env.h"
#include "transport/bootstrap/hostlist.h"
#include "transport/bootstrap/options.h"

namespace conveyor::transport {
namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

// The largest world: a rank is 14 bits of every message tag (transport/tag.h).
constexpr int kMaxWorld = kMaxRanks - 1;

// Shorter than this, a rendezvous cannot complete and a heartbeat (sent every quarter of
// the timeout, at most every 0.25 s) cannot arrive in time even on one quiet host.
constexpr double kMinTimeoutSeconds = 0.1;

// The launchers' (rank, world size) variables: torchrun's, Slurm's, Open MPI's.
constexpr std::pair<const char*, const char*> kRankAndSize[] = {
    {kEnvRank, kEnvWorldSize},
    {kEnvSlurmProcId, kEnvSlurmNtasks},
    {kEnvOmpiRank, kEnvOmpiSize},
};

std::string variable(const std::string& name) {
  return "environment variable " + name;
}

int env_integer(const std::string& name, const std::string& text, int lo, int hi,
                std::string_view unit) {
  return static_cast<int>(parse_integer(text, variable(name), lo, hi, unit));
}

// A timeout: finite seconds up to a week (common/checked_number.h), so it always becomes a
// deadline in the future (inf used to become one in the past).
double env_seconds(const std::string& name, const std::string& text) {
  return parse_real(text, variable(name), kMinTimeoutSeconds, kMaxSettingSeconds, "seconds");
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
  auto rank = first_set({kRankAndSize[0].first, kRankAndSize[1].first, kRankAndSize[2].first});
  auto size = first_set({kRankAndSize[0].second, kRankAndSize[1].second, kRankAndSize[2].second});
  if (rank.has_value() != size.has_value()) {
    // Name the partner of the variable that is set: the one missing.
    const std::string given = rank ? rank->first : size->first;
    std::string partner;
    for (const auto& [r, n] : kRankAndSize) {
      if (given == r) partner = n;
      if (given == n) partner = r;
    }
    throw Error(ErrorKind::kUsage,
                fmt::format("{} is set but no {} is (set {} too, or neither for a one-rank job)",
                            given, rank ? "world size" : "rank", partner));
  }
  if (size) {
    o.world_size = env_integer(size->first, size->second, 1, kMaxWorld, "ranks");
    o.world_size_from = size->first;
    o.rank = env_integer(rank->first, rank->second, 0, kMaxWorld - 1, "ranks");
    CONVEYOR_REQUIRE(o.rank < o.world_size, "{}={} is not below {}={}", rank->first, o.rank,
                     size->first, o.world_size);
  }
  if (auto local = first_set({kEnvLocalRank, kEnvSlurmLocalId, kEnvOmpiLocalRank}))
    o.local_rank = env_integer(local->first, local->second, 0, kMaxWorld - 1, "ranks");
  if (auto a = env(kEnvMasterAddr)) {
    o.master_addr = *a;
  } else if (rank && rank->first == kEnvSlurmProcId) {
    // Under srun, task 0 runs on the first node of the allocation.
    if (auto list = first_set({kEnvSlurmJobNodeList, kEnvSlurmNodeList})) {
      try {
        o.master_addr = expand_hostlist(list->second).front();
      } catch (const Error& e) {
        throw Error(ErrorKind::kUsage, fmt::format("{}: {}", list->first, e.message()),
                    fmt::format("set {} to rank 0's host instead", kEnvMasterAddr));
      }
    }
  }
  if (auto p = env(kEnvRdzvPort)) {
    o.master_port = env_integer(kEnvRdzvPort, *p, 1, 65535, "TCP ports");
  } else if (auto p = env(kEnvMasterPort)) {
    o.master_port = env_integer(kEnvMasterPort, *p, 1, 65535, "TCP ports");
    // torchrun's agent on the first node holds MASTER_PORT (its TCPStore).
    if (env(kEnvTorchelasticRunId)) {
      CONVEYOR_REQUIRE(o.master_port < 65535,
                       "{}=65535 under torchrun leaves no port for conveyor's rendezvous; set {}",
                       kEnvMasterPort, kEnvRdzvPort);
      ++o.master_port;
    }
  }
  if (auto t = env(kEnvJobToken)) o.job_token = *t;
  CONVEYOR_REQUIRE(o.world_size == 1 || !o.job_token.empty(),
                   "{} is not set for a {}-rank job; every rank needs the same secret token "
                   "(conveyor launch sets it; otherwise export the same random string on every "
                   "rank)",
                   kEnvJobToken, o.world_size);
  if (auto t = env(kEnvConnectTimeout)) o.connect_timeout_s = env_seconds(kEnvConnectTimeout, *t);
  if (auto t = env(kEnvHeartbeatTimeout))
    o.heartbeat_timeout_s = env_seconds(kEnvHeartbeatTimeout, *t);
  if (auto m = env(kEnvUcxPeerErrorMode)) {
    CONVEYOR_REQUIRE(*m == "0" || *m == "1", "{}='{}' must be 0 or 1", kEnvUcxPeerErrorMode, *m);
    o.ucx_peer_error_mode = *m == "1";
  }
  if (auto m = env(kEnvProgressThread)) {
    CONVEYOR_REQUIRE(*m == "0" || *m == "1", "{}='{}' must be 0 or 1", kEnvProgressThread, *m);
    o.progress_thread = *m == "1";
  }
  if (auto f = env(kEnvFailureReportFd))
    o.failure_report_fd = env_integer(kEnvFailureReportFd, *f, 0, 65535, "descriptors");
  return o;
}

}  // namespace conveyor::transport
