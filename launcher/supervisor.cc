#include "launcher/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "common/error.h"
#include "common/net.h"

extern char** environ;

namespace conveyor::cli {

namespace {

volatile sig_atomic_t g_signal = 0;
void on_signal(int sig) {
  g_signal = sig;
}

std::string random_token() {
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  unsigned char bytes[16] = {};
  urandom.read(reinterpret_cast<char*>(bytes), sizeof bytes);
  std::string hex;
  for (unsigned char b : bytes) hex += fmt::format("{:02x}", b);
  return hex;
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  CONVEYOR_CHECK(n > 0, "cannot find the conveyor binary (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

struct Child {
  int rank = 0;
  pid_t pid = -1;
  int out_fd = -1;
  std::string partial;  // output not yet ended by a newline
  bool exited = false;
  int exit_code = 0;
};

bool g_quiet = false;
std::string g_quiet_log;  // the ranks' output in quiet mode

void emit(Child& c, const char* data, size_t n, bool flush_partial) {
  if (g_quiet) {
    g_quiet_log += fmt::format("[rank {}] ", c.rank);
    g_quiet_log.append(data, n);
    return;
  }
  c.partial.append(data, n);
  size_t start = 0, nl;
  while ((nl = c.partial.find('\n', start)) != std::string::npos) {
    std::fprintf(stdout, "[rank %d] %.*s\n", c.rank, static_cast<int>(nl - start),
                 c.partial.data() + start);
    start = nl + 1;
  }
  c.partial.erase(0, start);
  if (flush_partial && !c.partial.empty()) {
    std::fprintf(stdout, "[rank %d] %s\n", c.rank, c.partial.c_str());
    c.partial.clear();
  }
  std::fflush(stdout);
}

pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            int* out_fd) {
  int fds[2];
  CONVEYOR_CHECK(pipe2(fds, O_CLOEXEC) == 0, "pipe failed: {}", std::strerror(errno));
  pid_t pid = fork();
  CONVEYOR_CHECK(pid >= 0, "fork failed: {}", std::strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
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
              const std::string& token) {
  std::vector<std::string> base_env;
  for (char** e = environ; *e; ++e) {
    std::string s(*e);
    static const char* kOwned[] = {"RANK=",        "WORLD_SIZE=",  "LOCAL_RANK=",
                                   "MASTER_ADDR=", "MASTER_PORT=", "CONVEYOR_JOB_TOKEN="};
    bool owned = false;
    for (const char* k : kOwned) owned |= s.rfind(k, 0) == 0;
    if (!owned) base_env.push_back(s);
  }
  const int world = o.nproc * o.nnodes;
  std::vector<Child> children(o.nproc);
  for (int i = 0; i < o.nproc; ++i) {
    auto env = base_env;
    const int rank = o.node_rank * o.nproc + i;
    env.push_back(fmt::format("RANK={}", rank));
    env.push_back(fmt::format("WORLD_SIZE={}", world));
    env.push_back(fmt::format("LOCAL_RANK={}", i));
    env.push_back("MASTER_ADDR=" + o.master_addr);
    env.push_back(fmt::format("MASTER_PORT={}", port));
    env.push_back("CONVEYOR_JOB_TOKEN=" + token);
    children[i].rank = rank;
    children[i].pid = spawn(argv, env, &children[i].out_fd);
  }

  int result = 0;
  bool stopping = false;
  using Clock = std::chrono::steady_clock;
  // After a failure: survivors get kNoticeTime to notice the dead peer themselves (and say
  // so, naming it), then SIGTERM, then SIGKILL after the grace time.
  constexpr auto kNoticeTime = std::chrono::seconds(2);
  auto term_at = Clock::time_point::max();
  auto stop_deadline = Clock::time_point::max();
  auto stop_all = [&](int sig) {
    for (auto& c : children) {
      if (!c.exited) kill(-c.pid, sig);
    }
  };
  for (;;) {
    if (g_signal != 0 && !stopping) {
      std::fprintf(stderr, "conveyor launch: signal %d, stopping all ranks\n", g_signal);
      stop_all(g_signal);
      stopping = true;
      result = 128 + g_signal;
      stop_deadline =
          Clock::now() + std::chrono::milliseconds(static_cast<int>(o.grace_seconds * 1000));
    }
    std::vector<pollfd> fds;
    std::vector<Child*> owners;
    for (auto& c : children) {
      if (c.out_fd >= 0) {
        fds.push_back({c.out_fd, POLLIN, 0});
        owners.push_back(&c);
      }
    }
    if (!fds.empty()) poll(fds.data(), fds.size(), 100);
    for (size_t i = 0; i < fds.size(); ++i) {
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
      if (c.exit_code != 0 && !stopping) {
        std::fprintf(stderr, "conveyor launch: rank %d failed (exit %d); stopping the others\n",
                     c.rank, c.exit_code);
        result = c.exit_code;
        stopping = true;
        term_at = Clock::now() + kNoticeTime;
        stop_deadline =
            term_at + std::chrono::milliseconds(static_cast<int>(o.grace_seconds * 1000));
      } else if (c.exit_code != 0 && result == 3 && c.exit_code != 3) {
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
  return result;
}

}  // namespace

int run_supervisor(const LaunchOptions& o) {
  CONVEYOR_REQUIRE(o.nproc >= 1, "--nproc must be at least 1 (got {})", o.nproc);
  CONVEYOR_REQUIRE(!o.command.empty(),
                   "conveyor launch needs a command after '--', e.g. conveyor launch --nproc 4 "
                   "-- conveyor train --stages 4");
  CONVEYOR_REQUIRE(o.max_restarts >= 0, "--max-restarts must not be negative");
  std::vector<std::string> argv = o.command;
  if (argv[0] == "conveyor") argv[0] = self_exe();
  const int port = o.master_port > 0 ? o.master_port : free_tcp_port();

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

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
                     random_token());
    if (code == 0 || g_signal != 0 || code == 2) break;  // bad usage will not get better
  }
  if (code != 0 && o.quiet) std::fputs(g_quiet_log.c_str(), stderr);
  return code;
}

}  // namespace conveyor::cli
