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
#include "launcher/launch/child_group.h"
#include "launcher/launch/launch_util.h"
#include "launcher/launch/launcher_channel.h"
#include "launcher/launch/multi_host.h"
#include "launcher/launch/slurm_launch.h"
#include "transport/bootstrap/job_failure.h"

namespace conveyor::cli {

namespace {

// Every rank gets the report socket (transport/bootstrap/job_failure.h) at this descriptor.
constexpr int kReportFd = 3;

bool g_quiet = false;
std::string g_quiet_log;  // the ranks' output in quiet mode

// A rank's output, line by line with its "[rank N]" prefix (or kept for the end, quiet).
void emit(int rank, LineBuffer& output, std::string_view data, bool flush_partial) {
  if (g_quiet) {
    g_quiet_log += fmt::format("[rank {}] ", rank);
    g_quiet_log.append(data);
    return;
  }
  output.feed(data, flush_partial, [&](std::string_view line) {
    std::fprintf(stdout, "[rank %d] %.*s\n", rank, static_cast<int>(line.size()), line.data());
  });
  std::fflush(stdout);
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
  ChildGroup children;
  std::vector<int> ranks;                    // by child index
  std::vector<bool> killed_silent(o.nproc);  // killed because the job declared it silent
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
    ranks.push_back(rank);
    children.start({.argv = argv, .env = env, .pass_fd = report[1], .pass_as = kReportFd});
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
    return std::find(ranks.begin(), ranks.end(), rank) != ranks.end();
  };
  bool reported = false;
  auto on_report = [&](const transport::JobFailure& f) {
    if (reported || f.rank < 0) return;  // every survivor reports the same failure
    reported = true;
    std::optional<size_t> local;
    for (size_t i = 0; i < children.size(); ++i)
      if (ranks[i] == f.rank && !children[i].exited) local = i;
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
      kill(-children[*local].pid, SIGKILL);
      killed_silent[*local] = true;
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
      children.signal(sig);
      stopping = true;
      result = 128 + sig;
      const double wait_s = preempting ? o.stop_timeout_seconds : o.grace_seconds;
      stop_deadline = Clock::now() + clamped_seconds(wait_s);
    }
    std::vector<int> also = {report[0]};
    if (control) also.push_back(control->fd());
    auto relay = [&](size_t i, std::string_view data, bool last) {
      emit(ranks[i], children[i].output, data, last);
    };
    children.poll(also, relay, [&](size_t i) {
      const int rank = ranks[i], code = children[i].exit_code;
      if (code == 0) return;
      drain_reports();  // a rank reports the blamed rank before it exits: read that first

      if (!announced && !stopping) {
        announced = true;
        blamed = code == kExitPeerFailed ? -1 : rank;
        std::fprintf(stderr, "conveyor launch: rank %d failed (exit %d); stopping the others\n",
                     rank, code);
        result = code;
        begin_stopping();
      } else if (rank == blamed) {  // named by a report before it ended
        std::fprintf(stderr, "conveyor launch: rank %d failed (exit %d%s)\n", rank, code,
                     killed_silent[i] ? ", killed by launch" : "");
        result = code;  // the blamed rank's own status says most
      } else if (result == kExitPeerFailed && code != kExitPeerFailed &&
                 !(blamed >= 0 && is_local(blamed))) {
        result = code;  // a rank's own failure says more than "a peer failed"
      }
    });
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
    if (children.done()) break;
    if (stopping && Clock::now() > term_at) {
      children.signal(SIGTERM);
      term_at = Clock::time_point::max();
    }
    if (stopping && Clock::now() > stop_deadline) {
      children.signal(SIGKILL);
      stop_deadline = Clock::time_point::max();
    }
  }
  close(report[0]);
  return job_exit_code(children.exit_codes(), preempting, result);
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
