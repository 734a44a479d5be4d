// Two jobs given one --ckpt-dir: the second exits 2 naming the first (host, pid, start time)
// and touches nothing; once the first is dead, the next job takes its stale lock over with a
// warning naming it.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "tests/integration/checkpoint/train_helpers.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace conveyor::test;
using namespace conveyor::test::ckpt;

namespace {

// A conveyor process in the background (output in `log`), SIGKILLed and reaped when the
// object dies unless it was already.
class Background {
 public:
  Background(const std::vector<std::string>& args, const fs::path& log) {
    std::vector<std::string> argv{CONVEYOR_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const int rc = posix_spawn(&pid_, cargv[0], &actions, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
  }
  ~Background() { kill_and_reap(); }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }
  // SIGKILL (as a crash or the OOM killer would) and wait for the process to be gone.
  void kill_and_reap() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// Waits (up to 60 s) until `job` has recorded itself in the lock file: it then holds the lock.
void wait_for_lock(const fs::path& root, const Background& job, const fs::path& log) {
  const std::string mark = fmt::format("\"pid\":{}", job.pid());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (read_file(root / ".lock").find(mark) == std::string::npos) {
    INFO(read_file(log));
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    int status = 0;
    REQUIRE(waitpid(job.pid(), &status, WNOHANG) == 0);          // still running
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling, bounded above
  }
}

}  // namespace

TEST_CASE(
    "a second job on a locked --ckpt-dir exits 2 naming the first, and a dead job's lock is "
    "taken over",
    "[checkpoint][lock]") {
  TempDir dir;
  const auto root = dir / "ckpt";
  // A finished run leaves a committed step 4 for the jobs below to resume from.
  auto done = train(1, {"--steps", "1000000", "--exit-at-step", "4", "--ckpt-dir", root.string()});
  INFO(done.output);
  REQUIRE(done.exit_code == 0);
  CHECK(read_file(root / ".lock").empty());  // released cleanly: no warning for the next job

  const auto log = dir / "first.log";
  Background first(train_args(1, {"--steps", "1000000", "--ckpt-dir", root.string()}), log);
  wait_for_lock(root, first, log);
  first.signal(SIGSTOP);  // it holds the lock, and keeps it while the second job tries
  const std::string holder = fmt::format("pid {}", first.pid());

  for (int stages : {1, 2}) {
    INFO("second job on " << stages << " stage(s)");
    auto second = train(stages, {"--steps", "1000000", "--ckpt-dir", root.string()});
    INFO(second.output);
    CHECK(second.exit_code == 2);
    CHECK_THAT(second.output, Catch::Contains("in use by another job") && Catch::Contains(holder) &&
                                  Catch::Contains("started"));
    CHECK_THAT(second.output, !Catch::Contains("resumed from"));
  }
  CHECK_THAT(read_file(root / ".lock"), Catch::Contains(fmt::format("\"pid\":{}", first.pid())));

  first.kill_and_reap();  // dies holding the lock: the kernel drops it, the record stays
  auto third = train(1, {"--steps", "1000000", "--exit-at-step", "6", "--ckpt-dir", root.string()});
  INFO(third.output);
  CHECK(third.exit_code == 0);
  CHECK_THAT(third.output, Catch::Contains("taking over the lock") && Catch::Contains(holder));
  CHECK(read_file(root / ".lock").empty());
}
