#include "launcher/launch/multi_host.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>

#include "common/clock.h"
#include "common/error.h"
#include "common/exit_code.h"
#include "common/launch_env.h"
#include "launcher/launch/child_group.h"
#include "launcher/launch/hostfile.h"
#include "launcher/launch/launch_util.h"
#include "launcher/launch/launcher_channel.h"

namespace conveyor::cli {

namespace {

// The most ranks one job may have (the transport's limit).

// ssh exits 255 when it could not connect or authenticate, or lost the connection. launch
// exits with it too when it gives up on a host it cannot reach.
constexpr int kSshFailed = 255;

// What launch adds to an ssh command line (after the --rsh words, which win: ssh takes the
// first value it sees). A host that cannot be reached fails the connection within
// kSshConnectTimeoutS rather than TCP's two minutes, and a session whose host or link goes
// down ends (exit 255) after kSshAliveCount unanswered keepalives kSshAliveIntervalS apart,
// rather than never.
constexpr int kSshConnectTimeoutS = 15;
constexpr int kSshAliveIntervalS = 5;
constexpr int kSshAliveCount = 3;

// One host's ssh session (its process is the ChildGroup's child of the same index; its stdin
// is the launcher channel: token, signals; closing it stops the host).
struct Session {
  HostSlots host;
  int first_rank = 0;
  // Still running when launch gave up waiting for it, so launch killed it: the host, or the
  // link to it, is gone (a reachable supervisor ends once its session's stdin closes).
  bool unresponsive = false;
};

// Variables the ranks need that ssh does not carry: UCX's, OpenBLAS's (OPENBLAS_CORETYPE
// picks the kernels, and so the bits) and conveyor's own (not the secret, which goes on
// stdin, nor the per-host report descriptor).
std::vector<std::string> forwarded_environment() {
  std::vector<std::string> out;
  for (const auto& s : environment_without({kEnvJobToken, kEnvFailureReportFd}))
    if (s.rfind("UCX_", 0) == 0 || s.rfind("CONVEYOR_", 0) == 0 || s.rfind("OPENBLAS_", 0) == 0)
      out.push_back(s);
  return out;
}

// The command line the remote login shell runs for host `i`.
std::string remote_command(const LaunchOptions& o, const Session& s, int node, int nnodes,
                           int world, const std::string& master_addr, int port, int restart) {
  // Built with fmt, not operator+ chains (GCC 12 warns falsely about those at -O3).
  std::string cmd =
      fmt::format("cd {} && exec", shell_quote(std::filesystem::current_path().string()));
  const auto env = forwarded_environment();
  if (!env.empty()) {
    cmd += " env";
    for (const auto& kv : env) fmt::format_to(std::back_inserter(cmd), " {}", shell_quote(kv));
  }
  fmt::format_to(std::back_inserter(cmd),
                 " {} launch --nproc {} --nnodes {} --node-rank {} --first-rank {} --world-size "
                 "{} --master-addr {} --master-port {} --grace {} --stop-timeout {} "
                 "--restart-count {} --token-stdin --",
                 shell_quote(self_exe()), s.host.slots, nnodes, node, s.first_rank, world,
                 shell_quote(master_addr), port, o.grace_seconds, o.stop_timeout_seconds, restart);
  for (const auto& word : o.command)
    fmt::format_to(std::back_inserter(cmd), " {}", shell_quote(word));
  return cmd;
}

void write_line(ChildGroup::Child& c, const std::string& line) {
  if (c.stdin_fd < 0) return;
  // A few bytes into an empty pipe: never blocks. A host that is gone gives EPIPE.
  if (::write(c.stdin_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    close(c.stdin_fd);
    c.stdin_fd = -1;
  }
}

// Relays a host's output: the ranks' lines keep their "[rank N]" prefix; the supervisor's
// and ssh's own lines get "[host H]".
void relay(const Session& s, LineBuffer& output, std::string_view data, bool flush) {
  output.feed(data, flush, [&](std::string_view line) {
    if (line.rfind("[rank ", 0) == 0)
      std::fprintf(stdout, "%.*s\n", static_cast<int>(line.size()), line.data());
    else
      std::fprintf(stdout, "[host %s] %.*s\n", s.host.host.c_str(), static_cast<int>(line.size()),
                   line.data());
  });
  std::fflush(stdout);
}

std::string rank_range(const Session& s) {
  return s.host.slots == 1
             ? fmt::format("rank {}", s.first_rank)
             : fmt::format("ranks {}-{}", s.first_rank, s.first_rank + s.host.slots - 1);
}

// One attempt: every host's supervisor, until all have ended.
int run_hosts(const LaunchOptions& o, const std::vector<HostSlots>& hosts,
              const std::vector<std::string>& rsh, const std::string& master_addr, int port,
              int restart) {
  const std::string token = random_token();
  int world = 0;
  std::vector<Session> sessions(hosts.size());
  ChildGroup group;  // child i is sessions[i]'s ssh
  for (size_t i = 0; i < hosts.size(); ++i) {
    sessions[i].host = hosts[i];
    sessions[i].first_rank = world;
    world += hosts[i].slots;
  }
  const bool is_ssh = std::filesystem::path(rsh[0]).filename() == "ssh";
  for (size_t i = 0; i < sessions.size(); ++i) {
    Session& s = sessions[i];
    std::vector<std::string> argv = rsh;
    if (is_ssh)
      argv.insert(argv.end(), {"-o", "BatchMode=yes",  // never a prompt
                               "-o", fmt::format("ConnectTimeout={}", kSshConnectTimeoutS), "-o",
                               fmt::format("ServerAliveInterval={}", kSshAliveIntervalS), "-o",
                               fmt::format("ServerAliveCountMax={}", kSshAliveCount)});
    argv.push_back(s.host.host);
    argv.push_back(remote_command(o, s, static_cast<int>(i), static_cast<int>(hosts.size()), world,
                                  master_addr, port, restart));
    const size_t child = group.start({.argv = argv, .env = std::nullopt, .stdin_pipe = true});
    write_line(group[child], LauncherChannel::token_line(token));
  }

  using Clock = std::chrono::steady_clock;
  // After the first failure the other hosts' ranks hear of it from the job and end by
  // themselves; kNoticeTime plus the grace time later they are told to stop (signal line),
  // then their sessions are closed, then killed.
  constexpr auto kNoticeTime = std::chrono::seconds(2);
  const auto grace = clamped_seconds(o.grace_seconds);
  auto stop_at = Clock::time_point::max(), close_at = stop_at, kill_at = stop_at;
  bool stopping = false;
  int result = 0;
  // `wait`: how long the hosts' ranks get after being told to stop, before their sessions
  // are closed (and, 5 s later, killed).
  auto begin_stopping = [&](Clock::duration notice, Clock::duration wait) {
    stopping = true;
    stop_at = Clock::now() + notice;
    close_at = stop_at + wait + std::chrono::seconds(1);
    kill_at = close_at + std::chrono::seconds(5);
  };
  // Why a session that ended with 255 (ssh's, or launch's own kill) ended, naming its host.
  auto lost_host = [&](const Session& s) {
    if (s.unresponsive)
      return fmt::format(
          "host {} ({}) is unreachable: its session still ran after it was told to stop and "
          "was closed (the host, or the link to it, is down); killed it",
          s.host.host, rank_range(s));
    return fmt::format(
        "host {} ({}) failed: {} exited 255 (it could not connect, or the session was lost: "
        "the host, the link or its supervisor died; its message is above)",
        s.host.host, rank_range(s), rsh[0]);
  };
  int forwarded = 0;
  bool preempting = false;
  for (;;) {
    if (launch_signal() != 0 && forwarded != launch_signal()) {
      forwarded = launch_signal();
      // SIGTERM/SIGUSR1: every rank finishes its step, saves and stops (stop_request.h).
      preempting = is_preemption_signal(forwarded);
      std::fprintf(stderr, "conveyor launch: signal %d, %s\n", forwarded,
                   preempting ? "every rank on every host saves and stops" : "stopping every host");
      for (size_t i = 0; i < group.size(); ++i)
        write_line(group[i], LauncherChannel::signal_line(forwarded));
      if (result == 0) result = 128 + forwarded;
      begin_stopping(std::chrono::seconds(0),
                     preempting ? clamped_seconds(o.stop_timeout_seconds) : grace);
      stop_at = Clock::time_point::max();  // already told
    }
    group.poll(
        {},
        [&](size_t i, std::string_view data, bool last) {
          relay(sessions[i], group[i].output, data, last);
        },
        [&](size_t i) {
          ChildGroup::Child& c = group[i];
          const Session& s = sessions[i];
          if (c.stdin_fd >= 0) close(c.stdin_fd);
          c.stdin_fd = -1;
          if (c.exit_code == 0 || (preempting && c.exit_code == kExitPreempted)) return;
          if (s.unresponsive) c.exit_code = kSshFailed;  // not 137: launch's own SIGKILL
          // A host whose ranks exit 3 lost a peer on another host (its supervisor's line above
          // names the rank): it is not the one that failed. The one that did is named when its
          // session ends, which for a host that cannot be reached is when ssh or launch gives up.
          if (!stopping) {
            if (c.exit_code == kSshFailed)
              std::fprintf(stderr, "conveyor launch: %s; stopping the other hosts\n",
                           lost_host(s).c_str());
            else if (c.exit_code == kExitPeerFailed)
              std::fprintf(stderr,
                           "conveyor launch: host %s (%s) stopped because a rank on another host "
                           "failed (exit 3; the line above names it); stopping the other hosts\n",
                           s.host.host.c_str(), rank_range(s).c_str());
            else
              std::fprintf(stderr,
                           "conveyor launch: host %s (%s) failed (exit %d); stopping the "
                           "other hosts\n",
                           s.host.host.c_str(), rank_range(s).c_str(), c.exit_code);
            result = c.exit_code;
            begin_stopping(kNoticeTime, grace);
          } else if (result == kExitPeerFailed && c.exit_code != kExitPeerFailed &&
                     launch_signal() == 0) {
            // The host whose ranks the others lost: its own status says more than "a peer failed".
            if (c.exit_code == kSshFailed)
              std::fprintf(stderr, "conveyor launch: %s\n", lost_host(s).c_str());
            else
              std::fprintf(stderr, "conveyor launch: host %s (%s) failed (exit %d)\n",
                           s.host.host.c_str(), rank_range(s).c_str(), c.exit_code);
            result = c.exit_code;
          } else if (s.unresponsive) {
            std::fprintf(stderr, "conveyor launch: %s\n", lost_host(s).c_str());
          }
        });
    if (group.done()) break;
    const auto now = Clock::now();
    if (now > stop_at) {
      for (size_t i = 0; i < group.size(); ++i)
        write_line(group[i], LauncherChannel::signal_line(SIGTERM));
      stop_at = Clock::time_point::max();
    }
    if (now > close_at) {
      group.close_stdin();
      close_at = Clock::time_point::max();
    }
    if (now > kill_at) {
      for (size_t i = 0; i < group.size(); ++i) {
        if (group[i].exited) continue;
        kill(-group[i].pid, SIGKILL);
        sessions[i].unresponsive = true;
      }
      kill_at = Clock::time_point::max();
    }
  }
  return job_exit_code(group.exit_codes(), preempting, result);
}

}  // namespace

int run_multi_host(const LaunchOptions& o) {
  CONVEYOR_REQUIRE(o.hostfile.empty() || o.hosts.empty(), "give --hostfile or --hosts, not both");
  CONVEYOR_REQUIRE(o.nproc == 0,
                   "--nproc does not go with --hostfile/--hosts: the slots there say how many "
                   "ranks each host runs");
  CONVEYOR_REQUIRE(o.nnodes == 1 && o.node_rank == 0 && o.first_rank < 0 && !o.token_stdin,
                   "--nnodes, --node-rank, --first-rank and --token-stdin are set by the "
                   "launcher for each host, not with --hostfile/--hosts");
  const auto hosts = o.hostfile.empty() ? parse_hosts(o.hosts) : read_hostfile(o.hostfile);
  int world = 0;
  for (const auto& h : hosts) world += h.slots;
  CONVEYOR_REQUIRE(world <= kMaxJobRanks, "the hosts have {} slots in all; at most {} ranks", world,
                   kMaxJobRanks);
  const std::string first = hosts[0].host.substr(hosts[0].host.find('@') + 1);  // user@host
  const std::string master_addr = o.master_addr.empty() ? first : o.master_addr;
  const int port = o.master_port > 0 ? o.master_port : kDefaultMultiHostPort;
  const auto rsh = split_command(o.rsh, "--rsh");

  catch_launch_signals();
  signal(SIGPIPE, SIG_IGN);  // a host that is gone must not kill the launcher

  std::fprintf(stderr, "conveyor launch: %d ranks on %zu hosts; rendezvous at %s:%d\n", world,
               hosts.size(), master_addr.c_str(), port);
  int code = 0;
  for (int attempt = 0; attempt <= o.max_restarts; ++attempt) {
    if (attempt > 0)
      std::fprintf(stderr,
                   "conveyor launch: restart %d of %d on every host (resuming from the latest "
                   "committed checkpoint)\n",
                   attempt, o.max_restarts);
    // A fresh secret per attempt: stragglers of a failed attempt cannot join the new one.
    code = run_hosts(o, hosts, rsh, master_addr, port, attempt);
    if (!worth_restarting(code)) break;
  }
  return code;
}

}  // namespace conveyor::cli
