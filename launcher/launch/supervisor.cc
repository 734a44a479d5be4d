#include "launcher/launch/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/exit_code.h"
#include "common/launch_env.h"
#include "common/net.h"
#include "launcher/launch/launch_util.h"
#include "launcher/launch/launcher_channel.h"
#include "launcher/launch/multi_host.h"
#include "launcher/launch/slurm_launch.h"
#include "transport/bootstrap/job_failure.h"

namespace conveyor::cli {

namespace {

// Every rank gets the report socket (transport/bootstrap/job_failure.h) at this descriptor.
constexpr int kReportFd = 3;

struct Child {
  int rank = 0;
  pid_t pid = -1;
  int out_fd = -1;
  LineBuffer output;
  bool exited = false;
  int exit_code = 0;
  bool killed_silent = false;  // we killed it because the job declared it silent
};

bool g_quiet = false;
std::string g_quiet_log;  // the ranks' output in quiet mode

void emit(Child& c, const char* data, size_t n, bool flush_partial) {
  if (g_quiet) {
    g_quiet_log += fmt::format("[rank {}] ", c.rank);
    g_quiet_log.append(data, n);
    return;
  }
  c.output.feed({data, n}, flush_partial, [&](std::string_view line) {
    std::fprintf(stdout, "[rank %d] %.*s\n", c.rank, static_cast<int>(line.size()), line.data());
  });
  std::fflush(stdout);
}

pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            int report_fd, int* out_fd) {
  int fds[2];
  CONVEYOR_CHECK(pipe2(fds, O_CLOEXEC) == 0, "pipe failed: {}", std::strerror(errno));
  const pid_t parent = getpid();
  pid_t pid = fork();
  CONVEYOR_CHECK(pid >= 0, "fork failed: {}", std::strerror(errno));
  if (pid == 0) {
    die_with_parent(parent);  // a rank never outlives its supervisor
    setpgid(0, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    // dup2 onto itself would keep close-on-exec.
    if (report_fd == kReportFd)
      fcntl(kReportFd, F_SETFD, 0);
    else
      dup2(report_fd, kReportFd);
    std::vector<char*> a, e;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    for (const auto& s : env) e.push_back(const_cast<char*>(s.c_str()));
    e.push_back(nullptr);
    execvpe(a[0], a.data(), e.data());
    std::fprintf(stderr, "conveyor launch: cannot run %s: %s\n", a[0], std::strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid);
  close(fds[1]);
  *out_fd = fds[0];
  return pid;
}

// One attempt: start every rank, pump output, stop all on the first failure.
int run_group(const LaunchOptions& o, const std::vector<std::string>& argv, int port,
              const std::string& token, LauncherChannel* control, int restart) {
  const std::vector<std::string> base_env =
      environment_without({kEnvRank, kEnvWorldSize, kEnvLocalRank, kEnvMasterAddr, kEnvMasterPort,
                           kEnvJobToken, kEnvFailureReportFd, kEnvRestartCount});
  const int world = o.world_size > 0 ? o.world_size : o.nproc * o.nnodes;
  const int first_rank = o.first_rank >= 0 ? o.first_rank : o.node_rank * o.nproc;
  // The ranks report here which rank the job blamed, the moment they learn it: a rank that
  // went silent cannot say so itself, and its peers' exit code 3 only says "a peer failed".
  int report[2];
  CONVEYOR_CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, report) == 0,
                 "socketpair failed: {}", std::strerror(errno));
  fcntl(report[0], F_SETFL, O_NONBLOCK);
  std::vector<Child> children(o.nproc);
  for (int i = 0; i < o.nproc; ++i) {
    auto env = base_env;
    const int rank = first_rank + i;
    env.push_back(fmt::format("{}={}", kEnvRank, rank));
    env.push_back(fmt::format("{}={}", kEnvWorldSize, world));
    env.push_back(fmt::format("{}={}", kEnvLocalRank, i));
    env.push_back(fmt::format("{}={}", kEnvMasterAddr,
                              o.master_addr.empty() ? std::string("127.0.0.1") : o.master_addr));
    env.push_back(fmt::format("{}={}", kEnvMasterPort, port));
    env.push_back(fmt::format("{}={}", kEnvJobToken, token));
    env.push_back(fmt::format("{}={}", kEnvFailureReportFd, kReportFd));
    env.push_back(fmt::format("{}={}", kEnvRestartCount, restart));
    children[i].rank = rank;
    children[i].pid = spawn(argv, env, report[1], &children[i].out_fd);
  }
  close(report[1]);

  int result = 0;
  bool stopping = false;
  bool preempting = false;  // stopping on SIGTERM/SIGUSR1: the ranks save first
  using Clock = std::chrono::steady_clock;
  // After a failure: survivors get kNoticeTime to notice the dead peer themselves (and say
  // so, naming it), then SIGTERM, then SIGKILL after the grace time. When a rank reported
  // the failure, the job has told them already: they are on their way out.
  constexpr auto kNoticeTime = std::chrono::seconds(2);
  auto term_at = Clock::time_point::max();
  auto stop_deadline = Clock::time_point::max();
  auto stop_all = [&](int sig) {
    for (auto& c : children) {
      if (!c.exited) kill(-c.pid, sig);
    }
  };
  auto begin_stopping = [&] {
    stopping = true;
    term_at = Clock::now() + kNoticeTime;
    stop_deadline = term_at + clamped_seconds(o.grace_seconds);
  };
  // The first line says which rank failed: the one the job blamed when a rank reported it,
  // else the first rank to fail. `blamed` is that rank (-1: not known).
  bool announced = false;
  int blamed = -1;
  auto is_local = [&](int rank) {
    return std::any_of(children.begin(), children.end(),
                       [&](const Child& c) { return c.rank == rank; });
  };
  bool reported = false;
  auto on_report = [&](const transport::JobFailure& f) {
    if (reported || f.rank < 0) return;  // every survivor reports the same failure
    reported = true;
    Child* local = nullptr;
    for (auto& c : children)
      if (c.rank == f.rank && !c.exited) local = &c;
    // A silent rank is stopped or hung: SIGTERM would wait for it to wake up. The job has
    // already declared it dead, so it is killed now.
    const bool kill_it = local && f.cause == transport::FailureCause::kSilent;
    if (!announced && launch_signal() == 0) {
      announced = true;
      blamed = f.rank;
      std::fprintf(stderr, "conveyor launch: %s; %s\n", f.reason.c_str(),
                   kill_it ? "killing it and stopping the others" : "stopping the others");
      if (result == 0) result = kExitPeerFailed;  // until a rank's own code says more
      begin_stopping();
    } else if (kill_it) {  // a survivor's exit 3 came first
      if (blamed < 0) blamed = f.rank;
      std::fprintf(stderr, "conveyor launch: %s; killing it\n", f.reason.c_str());
    }
    if (kill_it) {
      kill(-local->pid, SIGKILL);
      local->killed_silent = true;
    }
  };
  auto drain_reports = [&] {
    uint8_t buf[64 * 1024];
    ssize_t n;
    while ((n = recv(report[0], buf, sizeof buf, 0)) > 0) {
      if (auto f = transport::decode_failure_report({buf, static_cast<size_t>(n)})) on_report(*f);
    }
  };
  for (;;) {
    if (const int sig = launch_signal(); sig != 0 && !stopping) {
      // SIGTERM and SIGUSR1 ask the ranks to finish their step, save and stop
      // (pipeline/runtime/stop_request.h), which takes longer than dying.
      preempting = is_preemption_signal(sig);
      if (preempting)
        std::fprintf(stderr,
                     "conveyor launch: signal %d: every rank finishes its step, saves and stops "
                     "(--stop-timeout %g s)\n",
                     sig, o.stop_timeout_seconds);
      else
        std::fprintf(stderr, "conveyor launch: signal %d, stopping all ranks\n", sig);
      stop_all(sig);
      stopping = true;
      result = 128 + sig;
      const double wait_s = preempting ? o.stop_timeout_seconds : o.grace_seconds;
      stop_deadline = Clock::now() + clamped_seconds(wait_s);
    }
    std::vector<pollfd> fds;
    std::vector<Child*> owners;
    for (auto& c : children) {
      if (c.out_fd >= 0) {
        fds.push_back({c.out_fd, POLLIN, 0});
        owners.push_back(&c);
      }
    }
    fds.push_back({report[0], POLLIN, 0});
    if (control) fds.push_back({control->fd(), POLLIN, 0});
    poll(fds.data(), fds.size(), 100);
    drain_reports();
    if (control) {
      if (const int sig = control->poll_once(); sig != 0 && launch_signal() == 0) {
        if (control->closed())
          std::fprintf(stderr,
                       "conveyor launch: lost the launcher (its ssh session ended); stopping "
                       "all ranks\n");
        note_launch_signal(sig);
      }
    }
    for (size_t i = 0; i < owners.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        emit(*owners[i], buf, static_cast<size_t>(n), false);
      } else if (n == 0 || errno != EINTR) {
        emit(*owners[i], "", 0, true);
        close(owners[i]->out_fd);
        owners[i]->out_fd = -1;
      }
    }
    // Reap.
    for (auto& c : children) {
      if (c.exited) continue;
      int status = 0;
      pid_t r = waitpid(c.pid, &status, WNOHANG);
      if (r != c.pid) continue;
      c.exited = true;
      c.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (c.exit_code == 0) continue;
      // A rank reports the blamed rank before it exits: read that first.
      if (!announced) drain_reports();
      if (!announced && !stopping) {
        announced = true;
        blamed = c.exit_code == kExitPeerFailed ? -1 : c.rank;
        std::fprintf(stderr, "conveyor launch: rank %d failed (exit %d); stopping the others\n",
                     c.rank, c.exit_code);
        result = c.exit_code;
        begin_stopping();
      } else if (c.rank == blamed) {  // named by a report before it ended
        std::fprintf(stderr, "conveyor launch: rank %d failed (exit %d%s)\n", c.rank, c.exit_code,
                     c.killed_silent ? ", killed by launch" : "");
        result = c.exit_code;  // the blamed rank's own status says most
      } else if (result == kExitPeerFailed && c.exit_code != kExitPeerFailed &&
                 !(blamed >= 0 && is_local(blamed))) {
        result = c.exit_code;  // a rank's own failure says more than "a peer failed"
      }
    }
    bool all_done = true;
    for (auto& c : children) all_done &= c.exited && c.out_fd < 0;
    if (all_done) break;
    if (stopping && Clock::now() > term_at) {
      stop_all(SIGTERM);
      term_at = Clock::time_point::max();
    }
    if (stopping && Clock::now() > stop_deadline) {
      stop_all(SIGKILL);
      stop_deadline = Clock::time_point::max();
    }
  }
  close(report[0]);
  std::vector<int> codes;
  for (const Child& c : children) codes.push_back(c.exit_code);
  return job_exit_code(codes, preempting, result);
}

}  // namespace

int run_supervisor(const LaunchOptions& o) {
  CONVEYOR_REQUIRE(!o.command.empty(),
                   "conveyor launch needs a command after '--', e.g. conveyor launch --nproc 4 "
                   "-- conveyor train --stages 4");
  CONVEYOR_REQUIRE(o.max_restarts >= 0, "--max-restarts must not be negative");
  CONVEYOR_REQUIRE(o.nnodes >= 1, "--nnodes must be at least 1 (got {})", o.nnodes);
  CONVEYOR_REQUIRE(o.node_rank >= 0 && o.node_rank < o.nnodes,
                   "--node-rank {} is outside 0..{} (--nnodes {})", o.node_rank, o.nnodes - 1,
                   o.nnodes);
  CONVEYOR_REQUIRE(o.nnodes == 1 || o.master_port > 0,
                   "--master-port 0 picks a free port on each node, so {} nodes would not "
                   "meet; give every node the same --master-port",
                   o.nnodes);
  CONVEYOR_REQUIRE(o.master_port >= 0 && o.master_port <= 65535,
                   "--master-port {} is not a TCP port (0..65535)", o.master_port);
  if (!o.hostfile.empty() || !o.hosts.empty()) return run_multi_host(o);
  if (wants_slurm_launch(o)) return run_slurm_launch(o);
  CONVEYOR_REQUIRE(o.nproc >= 1,
                   "conveyor launch needs --nproc N (ranks on this host), --hostfile/--hosts, "
                   "or a Slurm allocation to start srun in "
                   "(got --nproc {})",
                   o.nproc);
  CONVEYOR_REQUIRE(
      o.world_size == 0 || (o.first_rank >= 0 && o.first_rank + o.nproc <= o.world_size),
      "--first-rank {} with --nproc {} does not fit --world-size {}", o.first_rank, o.nproc,
      o.world_size);
  std::vector<std::string> argv = o.command;
  if (argv[0] == "conveyor") argv[0] = self_exe();
  const int port = o.master_port > 0 ? o.master_port : free_tcp_port();
  // Started by a multi-host launcher: the secret, then control lines, arrive on stdin.
  std::optional<LauncherChannel> control;
  std::string launcher_token;
  if (o.token_stdin) {
    control.emplace(STDIN_FILENO);
    launcher_token = control->read_token(Deadline::after_seconds(30));
  }

  catch_launch_signals();

  g_quiet = o.quiet;
  int code = 0;
  for (int attempt = 0; attempt <= o.max_restarts; ++attempt) {
    if (attempt > 0) {
      std::fprintf(stderr,
                   "conveyor launch: restart %d of %d (resuming from the latest "
                   "committed checkpoint)\n",
                   attempt, o.max_restarts);
    }
    // A fresh token per attempt: stragglers of a failed attempt cannot join the new one.
    code = run_group(o, argv, o.master_port > 0 ? port : (attempt == 0 ? port : free_tcp_port()),
                     o.token_stdin ? launcher_token : random_token(), control ? &*control : nullptr,
                     o.restart_count + attempt);
    if (!worth_restarting(code)) break;
  }
  if (code != 0 && o.quiet) std::fputs(g_quiet_log.c_str(), stderr);
  return code;
}

}  // namespace conveyor::cli
