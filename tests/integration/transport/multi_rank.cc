#include "tests/integration/transport/multi_rank.h"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "common/error.h"
#include "common/net.h"
#include "tests/test_util.h"

namespace conveyor::test {

namespace {
int g_go_fd = -1;
}

void wait_for_go() {
  char c;
  if (g_go_fd >= 0) (void)!::read(g_go_fd, &c, 1);
}

std::vector<RankOutcome> run_job(const JobSpec& spec, const RankBody& body) {
  int port = free_tcp_port();
  int go[2];
  if (pipe(go) != 0) throw std::runtime_error("pipe");
  std::vector<pid_t> pids(spec.world);
  // Per child: its result pipe and, with capture_output, its output pipe (-1 once closed).
  std::vector<int> fds(spec.world), out_fds(spec.world, -1);
  for (int r = 0; r < spec.world; ++r) {
    int p[2], o[2] = {-1, -1};
    if (pipe(p) != 0) throw std::runtime_error("pipe");
    if (spec.capture_output && pipe(o) != 0) throw std::runtime_error("pipe");
    pid_t pid = fork();
    if (pid == 0) {
      ::close(p[0]);
      ::close(go[1]);
      if (spec.capture_output) {
        ::close(o[0]);
        ::dup2(o[1], 1);
        ::dup2(o[1], 2);
        ::close(o[1]);
        std::setvbuf(stdout, nullptr, _IOLBF, 0);  // nothing lost if UCX aborts the process
      }
      g_go_fd = spec.parent_action ? go[0] : -1;
      setenv("UCX_TLS", spec.ucx_tls.c_str(), 1);
      transport::Options o;
      o.rank = r;
      o.world_size = spec.world;
      o.master_addr = "127.0.0.1";
      o.master_port = port;
      o.job_token = spec.token;
      o.fingerprint = spec.fingerprint;
      o.connect_timeout_s = 20;
      int code = 0;
      std::string text;
      try {
        text = body(r, o);
      } catch (const Error& e) {
        code = e.exit_code();
        text = describe(e);
      } catch (const std::exception& e) {
        code = 4;
        text = e.what();
      }
      (void)!::write(p[1], text.data(), text.size());
      ::close(p[1]);
      std::fflush(stdout);
      std::fflush(stderr);
      _exit(code);
    }
    ::close(p[1]);
    if (spec.capture_output) ::close(o[1]);
    pids[r] = pid;
    fds[r] = p[0];
    out_fds[r] = o[0];
  }
  ::close(go[0]);
  if (spec.parent_action) {
    try {
      spec.parent_action(port);
    } catch (...) {
      for (pid_t pid : pids) kill(pid, SIGKILL);
      for (pid_t pid : pids) waitpid(pid, nullptr, 0);
      throw;
    }
    std::string bytes(spec.world, 'g');
    (void)!::write(go[1], bytes.data(), bytes.size());
  }
  ::close(go[1]);

  std::vector<RankOutcome> out(spec.world);
  std::vector<bool> reaped(spec.world, false);
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<long>(spec.timeout_s * 1000));
  int left = spec.world;
  char buf[4096];
  // Reads what is there now; closes the pipe at its end.
  auto drain = [&](int& fd, std::string& into) {
    pollfd p{fd, POLLIN, 0};
    while (fd >= 0 && ::poll(&p, 1, 0) == 1) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fd);
        fd = -1;
        break;
      }
      into.append(buf, static_cast<size_t>(n));
    }
  };
  while (left > 0) {
    // Drain the pipes so a chatty child never blocks on a full pipe.
    std::vector<pollfd> pfds;
    for (int r = 0; r < spec.world; ++r) {
      if (fds[r] >= 0) pfds.push_back({fds[r], POLLIN, 0});
      if (out_fds[r] >= 0) pfds.push_back({out_fds[r], POLLIN, 0});
    }
    ::poll(pfds.data(), pfds.size(), 20);
    for (int r = 0; r < spec.world; ++r) {
      drain(fds[r], out[r].text);
      drain(out_fds[r], out[r].output);
    }
    int stopped = 0;
    for (int r = 0; r < spec.world; ++r) {
      if (reaped[r]) continue;
      int status = 0;
      pid_t got = waitpid(pids[r], &status, WNOHANG | WUNTRACED);
      if (got == pids[r] && WIFSTOPPED(status)) {
        out[r].stopped = true;
      } else if (got == pids[r]) {
        reaped[r] = true;
        --left;
        out[r].exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      stopped += !reaped[r] && out[r].stopped;
    }
    // Only stopped children are left: nobody will wake them.
    if (left > 0 && stopped == left) {
      for (int r = 0; r < spec.world; ++r) {
        if (reaped[r]) continue;
        kill(pids[r], SIGKILL);
        waitpid(pids[r], nullptr, 0);
        reaped[r] = true;
        out[r].exit_code = 128 + SIGKILL;
      }
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      for (int r = 0; r < spec.world; ++r) {
        if (reaped[r]) continue;
        kill(pids[r], SIGKILL);
        waitpid(pids[r], nullptr, 0);
        reaped[r] = true;
        out[r].exit_code = 137;
        out[r].text += " [killed: the job did not finish in time]";
      }
      break;
    }
  }
  for (int r = 0; r < spec.world; ++r) {
    for (auto [fd, into] : {std::pair{&fds[r], &out[r].text}, {&out_fds[r], &out[r].output}}) {
      if (*fd < 0) continue;
      ssize_t n;
      while ((n = ::read(*fd, buf, sizeof buf)) > 0) into->append(buf, static_cast<size_t>(n));
      ::close(*fd);
    }
  }
  return out;
}

void fill_pattern(void* p, size_t n, uint64_t seed) {
  auto* b = static_cast<uint8_t*>(p);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b[i] = static_cast<uint8_t>(x);
  }
}

long check_pattern(const void* p, size_t n, uint64_t seed) {
  std::vector<uint8_t> want(n);
  fill_pattern(want.data(), n, seed);
  auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i)
    if (b[i] != want[i]) return static_cast<long>(i);
  return -1;
}

}  // namespace conveyor::test
