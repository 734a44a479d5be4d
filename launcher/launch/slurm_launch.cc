#include "launcher/launch/slurm_launch.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "common/exit_code.h"
#include "common/launch_env.h"
#include "launcher/launch/launch_util.h"
#include "launcher/launch/multi_host.h"

namespace conveyor::cli {

namespace {

// "  3: text" (srun --label) -> "[rank 3] text"; other lines unchanged.
std::string relabel(const std::string& line) {
  size_t i = 0;
  while (i < line.size() && line[i] == ' ') ++i;
  const size_t digits = i;
  while (i < line.size() && std::isdigit(static_cast<unsigned char>(line[i]))) ++i;
  if (i == digits || i + 1 >= line.size() || line[i] != ':' || line[i + 1] != ' ') return line;
  return fmt::format("[rank {}] {}", line.substr(digits, i - digits), line.substr(i + 2));
}

// One srun run; returns its exit code.
int run_srun(const LaunchOptions& o, int port, int restart) {
  std::vector<std::string> argv = {"srun", "--label", "--kill-on-bad-exit=1"};
  std::vector<std::string> command = o.command;
  if (command[0] == "conveyor") command[0] = self_exe();
  argv.insert(argv.end(), command.begin(), command.end());
  // The tasks' place comes from Slurm: a RANK or WORLD_SIZE of ours would win over it.
  std::vector<std::string> env =
      environment_without({kEnvRank, kEnvWorldSize, kEnvLocalRank, kEnvMasterPort, kEnvJobToken,
                           kEnvRestartCount, kEnvFailureReportFd});
  env.push_back(fmt::format("{}={}", kEnvJobToken, random_token()));
  env.push_back(fmt::format("{}={}", kEnvMasterPort, port));
  env.push_back(fmt::format("{}={}", kEnvRestartCount, restart));

  int out[2];
  CONVEYOR_CHECK(pipe2(out, O_CLOEXEC) == 0, "pipe failed: {}", std::strerror(errno));
  const pid_t parent = getpid();
  const pid_t pid = fork();
  CONVEYOR_CHECK(pid >= 0, "fork failed: {}", std::strerror(errno));
  if (pid == 0) {
    die_with_parent(parent);  // srun ends its tasks when it dies
    setpgid(0, 0);            // signals reach srun through the launcher only, once
    dup2(out[1], 1);
    dup2(out[1], 2);
    std::vector<char*> a, e;
    for (auto& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    for (auto& s : env) e.push_back(s.data());
    e.push_back(nullptr);
    execvpe(a[0], a.data(), e.data());
    std::fprintf(stderr, "conveyor launch: cannot run srun: %s (is Slurm installed here?)\n",
                 std::strerror(errno));
    _exit(127);
  }
  close(out[1]);
  LineBuffer output;
  int forwarded = 0;
  for (bool open = true; open;) {
    if (launch_signal() != 0 && launch_signal() != forwarded) {
      forwarded = launch_signal();
      std::fprintf(stderr, "conveyor launch: signal %d, passed to srun\n", forwarded);
      kill(pid, forwarded);
    }
    pollfd p{out[0], POLLIN, 0};
    ::poll(&p, 1, 100);
    if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
    char buf[65536];
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) open = false;
    output.feed({buf, n > 0 ? static_cast<size_t>(n) : 0}, !open, [](std::string_view line) {
      std::printf("%s\n", relabel(std::string(line)).c_str());
    });
    std::fflush(stdout);
  }
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

bool wants_slurm_launch(const LaunchOptions& o) {
  const char* job = std::getenv(kEnvSlurmJobId);
  return o.nproc == 0 && o.hostfile.empty() && o.hosts.empty() && !o.token_stdin && job &&
         *job != '\0';
}

int run_slurm_launch(const LaunchOptions& o) {
  const int port = o.master_port > 0 ? o.master_port : kDefaultMultiHostPort;
  catch_launch_signals();
  std::fprintf(stderr,
               "conveyor launch: Slurm job %s: starting the ranks with srun (rendezvous port "
               "%d)\n",
               std::getenv(kEnvSlurmJobId), port);
  int code = 0;
  for (int attempt = 0; attempt <= o.max_restarts; ++attempt) {
    if (attempt > 0)
      std::fprintf(stderr,
                   "conveyor launch: restart %d of %d (srun again, resuming from the latest "
                   "committed checkpoint)\n",
                   attempt, o.max_restarts);
    code = run_srun(o, port, attempt);
    if (!worth_restarting(code)) break;
  }
  return code;
}

}  // namespace conveyor::cli
