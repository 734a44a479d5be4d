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

// One host's ssh session.
struct Session {
  HostSlots host;
  int first_rank = 0;
  pid_t pid = -1;
  int stdin_fd = -1;  // the launcher channel (token, signals); closing it stops the host
  int out_fd = -1;
  LineBuffer output;
  bool exited = false;
  int exit_code = 0;
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

pid_t spawn_session(const std::vector<std::string>& argv, int* stdin_fd, int* out_fd) {
  int in[2], out[2];
  CONVEYOR_CHECK(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0, "pipe failed: {}",
                 std::strerror(errno));
  const pid_t parent = getpid();
  const pid_t pid = fork();
  CONVEYOR_CHECK(pid >= 0, "fork failed: {}", std::strerror(errno));
  if (pid == 0) {
    // The session dies with the launcher; the remote supervisor then sees its stdin close
    // and stops its ranks.
    die_with_parent(parent);
    setpgid(0, 0);  // Ctrl-C reaches the launcher only; it forwards it to every host
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    std::vector<char*> a;
    for (const auto& w : argv) a.push_back(const_cast<char*>(w.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    std::fprintf(stderr, "conveyor launch: cannot run %s: %s\n", a[0], std::strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid);
  close(in[0]);
  close(out[1]);
  *stdin_fd = in[1];
  *out_fd = out[0];
  return pid;
}

void write_line(Session& s, const std::string& line) {
  if (s.stdin_fd < 0) return;
  // A few bytes into an empty pipe: never blocks. A host that is gone gives EPIPE.
  if (::write(s.stdin_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    close(s.stdin_fd);
    s.stdin_fd = -1;
  }
}

// Relays a host's output: the ranks' lines keep their "[rank N]" prefix; the supervisor's
// and ssh's own lines get "[host H]".
void relay(Session& s, const char* data, size_t n, bool flush) {
  s.output.feed({data, n}, flush, [&](std::string_view line) {
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
    s.pid = spawn_session(argv, &s.stdin_fd, &s.out_fd);
    write_line(s, LauncherChannel::token_line(token));
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
      for (auto& s : sessions) write_line(s, LauncherChannel::signal_line(forwarded));
      if (result == 0) result = 128 + forwarded;
      begin_stopping(std::chrono::seconds(0),
                     preempting ? clamped_seconds(o.stop_timeout_seconds) : grace);
      stop_at = Clock::time_point::max();  // already told
    }
    std::vector<pollfd> fds;
    std::vector<Session*> owners;
    for (auto& s : sessions) {
      if (s.out_fd < 0) continue;
      fds.push_back({s.out_fd, POLLIN, 0});
      owners.push_back(&s);
    }
    ::poll(fds.data(), fds.size(), 100);  // with no descriptor left: a 100 ms tick
    for (size_t i = 0; i < owners.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        relay(*owners[i], buf, static_cast<size_t>(n), false);
      } else if (n == 0 || errno != EINTR) {
        relay(*owners[i], "", 0, true);
        close(owners[i]->out_fd);
        owners[i]->out_fd = -1;
      }
    }
    for (auto& s : sessions) {
      if (s.exited) continue;
      int status = 0;
      if (waitpid(s.pid, &status, WNOHANG) != s.pid) continue;
      s.exited = true;
      s.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (s.stdin_fd >= 0) close(s.stdin_fd);
      s.stdin_fd = -1;
      if (s.exit_code == 0 || (preempting && s.exit_code == kExitPreempted)) continue;
      if (s.unresponsive) s.exit_code = kSshFailed;  // not 137: launch's own SIGKILL
      // A host whose ranks exit 3 lost a peer on another host (its supervisor's line above
      // names the rank): it is not the one that failed. The one that did is named when its
      // session ends, which for a host that cannot be reached is when ssh or launch gives up.
      if (!stopping) {
        if (s.exit_code == kSshFailed)
          std::fprintf(stderr, "conveyor launch: %s; stopping the other hosts\n",
                       lost_host(s).c_str());
        else if (s.exit_code == kExitPeerFailed)
          std::fprintf(stderr,
                       "conveyor launch: host %s (%s) stopped because a rank on another host "
                       "failed (exit 3; the line above names it); stopping the other hosts\n",
                       s.host.host.c_str(), rank_range(s).c_str());
        else
          std::fprintf(stderr,
                       "conveyor launch: host %s (%s) failed (exit %d); stopping the "
                       "other hosts\n",
                       s.host.host.c_str(), rank_range(s).c_str(), s.exit_code);
        result = s.exit_code;
        begin_stopping(kNoticeTime, grace);
      } else if (result == kExitPeerFailed && s.exit_code != kExitPeerFailed &&
                 launch_signal() == 0) {
        // The host whose ranks the others lost: its own status says more than "a peer failed".
        if (s.exit_code == kSshFailed)
          std::fprintf(stderr, "conveyor launch: %s\n", lost_host(s).c_str());
        else
          std::fprintf(stderr, "conveyor launch: host %s (%s) failed (exit %d)\n",
                       s.host.host.c_str(), rank_range(s).c_str(), s.exit_code);
        result = s.exit_code;
      } else if (s.unresponsive) {
        std::fprintf(stderr, "conveyor launch: %s\n", lost_host(s).c_str());
      }
    }
    bool all_done = true;
    for (auto& s : sessions) all_done &= s.exited && s.out_fd < 0;
    if (all_done) break;
    const auto now = Clock::now();
    if (now > stop_at) {
      for (auto& s : sessions) write_line(s, LauncherChannel::signal_line(SIGTERM));
      stop_at = Clock::time_point::max();
    }
    if (now > close_at) {
      for (auto& s : sessions) {
        if (s.stdin_fd >= 0) close(s.stdin_fd);
        s.stdin_fd = -1;
      }
      close_at = Clock::time_point::max();
    }
    if (now > kill_at) {
      for (auto& s : sessions) {
        if (s.exited) continue;
        kill(-s.pid, SIGKILL);
        s.unresponsive = true;
      }
      kill_at = Clock::time_point::max();
    }
  }
  std::vector<int> codes;
  for (const Session& s : sessions) codes.push_back(s.exit_code);
  return job_exit_code(codes, preempting, result);
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
