#include "launcher/launch/child_group.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/error.h"

namespace conveyor::cli {

ChildGroup::~ChildGroup() {
  for (Child& c : children_) {
    if (c.out_fd >= 0) ::close(c.out_fd);
    if (c.stdin_fd >= 0) ::close(c.stdin_fd);
  }
}

size_t ChildGroup::start(const ChildSpec& spec) {
  int out[2], in[2] = {-1, -1};
  CONVEYOR_CHECK(pipe2(out, O_CLOEXEC) == 0, "pipe failed: {}", std::strerror(errno));
  if (spec.stdin_pipe)
    CONVEYOR_CHECK(pipe2(in, O_CLOEXEC) == 0, "pipe failed: {}", std::strerror(errno));
  // Built before fork: the child only calls async-signal-safe functions.
  std::vector<char*> argv, env;
  for (const auto& s : spec.argv) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  if (spec.env) {
    for (const auto& s : *spec.env) env.push_back(const_cast<char*>(s.c_str()));
    env.push_back(nullptr);
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  CONVEYOR_CHECK(pid >= 0, "fork failed: {}", std::strerror(errno));
  if (pid == 0) {
    die_with_parent(parent);  // a child never outlives its supervisor
    setpgid(0, 0);            // Ctrl-C reaches the supervisor only; it forwards it
    if (spec.stdin_pipe) dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    if (spec.pass_fd >= 0) {
      if (spec.pass_fd == spec.pass_as)
        fcntl(spec.pass_as, F_SETFD, 0);  // dup2 onto itself would keep close-on-exec
      else
        dup2(spec.pass_fd, spec.pass_as);
    }
    if (spec.env)
      execvpe(argv[0], argv.data(), env.data());
    else
      execvp(argv[0], argv.data());
    std::fprintf(stderr, "conveyor launch: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid);
  ::close(out[1]);
  if (spec.stdin_pipe) ::close(in[0]);
  Child c;
  c.pid = pid;
  c.out_fd = out[0];
  c.stdin_fd = in[1];
  children_.push_back(std::move(c));
  return children_.size() - 1;
}

void ChildGroup::poll(std::span<const int> also, const OutputFn& output, const ExitFn& exited) {
  std::vector<pollfd> fds;
  std::vector<size_t> owners;
  for (size_t i = 0; i < children_.size(); ++i) {
    if (children_[i].out_fd < 0) continue;
    fds.push_back({children_[i].out_fd, POLLIN, 0});
    owners.push_back(i);
  }
  for (int fd : also) fds.push_back({fd, POLLIN, 0});
  ::poll(fds.data(), fds.size(), 100);  // with no descriptor left: a 100 ms tick
  for (size_t k = 0; k < owners.size(); ++k) {
    if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    Child& c = children_[owners[k]];
    char buf[65536];
    const ssize_t n = ::read(c.out_fd, buf, sizeof buf);
    if (n > 0) {
      output(owners[k], {buf, static_cast<size_t>(n)}, false);
    } else if (n == 0 || errno != EINTR) {
      output(owners[k], {}, true);
      ::close(c.out_fd);
      c.out_fd = -1;
    }
  }
  for (size_t i = 0; i < children_.size(); ++i) {
    Child& c = children_[i];
    if (c.exited) continue;
    int status = 0;
    if (waitpid(c.pid, &status, WNOHANG) != c.pid) continue;
    c.exited = true;
    c.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    exited(i);
  }
}

bool ChildGroup::done() const {
  for (const Child& c : children_)
    if (!c.exited || c.out_fd >= 0) return false;
  return true;
}

void ChildGroup::signal(int sig) {
  for (const Child& c : children_)
    if (!c.exited) kill(-c.pid, sig);
}

void ChildGroup::close_stdin() {
  for (Child& c : children_) {
    if (c.stdin_fd >= 0) ::close(c.stdin_fd);
    c.stdin_fd = -1;
  }
}

std::vector<int> ChildGroup::exit_codes() const {
  std::vector<int> codes;
  for (const Child& c : children_) codes.push_back(c.exit_code);
  return codes;
}

}  // namespace conveyor::cli
