#include "tests/test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace conveyor::test {

ScopedEnv::ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
  for (const char* n : {"RANK",
                        "WORLD_SIZE",
                        "LOCAL_RANK",
                        "SLURM_PROCID",
                        "SLURM_NTASKS",
                        "SLURM_LOCALID",
                        "SLURM_JOB_NODELIST",
                        "SLURM_NODELIST",
                        "OMPI_COMM_WORLD_RANK",
                        "OMPI_COMM_WORLD_SIZE",
                        "OMPI_COMM_WORLD_LOCAL_RANK",
                        "MASTER_ADDR",
                        "MASTER_PORT",
                        "CONVEYOR_RDZV_PORT",
                        "TORCHELASTIC_RUN_ID",
                        "CONVEYOR_JOB_TOKEN",
                        "CONVEYOR_UCX_PEER_ERROR_MODE",
                        "CONVEYOR_PROGRESS_THREAD",
                        "CONVEYOR_FAILURE_REPORT_FD",
                        "CONVEYOR_CONNECT_TIMEOUT",
                        "CONVEYOR_HEARTBEAT_TIMEOUT"}) {
    const char* v = std::getenv(n);
    saved_.emplace_back(n, v ? std::optional<std::string>(v) : std::nullopt);
    unsetenv(n);
  }
  for (const auto& [n, v] : vars) setenv(n, v, 1);
}

ScopedEnv::~ScopedEnv() {
  for (const auto& [n, v] : saved_)
    v ? (void)setenv(n.c_str(), v->c_str(), 1) : (void)unsetenv(n.c_str());
}

TempDir::TempDir() {
  std::random_device rd;
  auto base = std::filesystem::temp_directory_path();
  for (int i = 0; i < 100; ++i) {
    auto candidate = base / ("conveyor-test-" + std::to_string(rd()));
    if (std::filesystem::create_directory(candidate)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

RunResult run_program(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                      double timeout_s) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);

  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) envs.emplace_back(*e);
  for (const auto& e : env) {
    auto name = e.substr(0, e.find('=') + 1);
    std::erase_if(envs, [&](const std::string& x) { return x.rfind(name, 0) == 0; });
    envs.push_back(e);
  }
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  pid_t pid = 0;
  int rc = posix_spawnp(&pid, cargv[0], &actions, &attr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    throw std::runtime_error("cannot start " + argv[0]);
  }

  RunResult result;
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<long>(timeout_s * 1000));
  bool killed = false;
  char buf[65536];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0 && !killed) {
      kill(-pid, SIGKILL);
      killed = true;
    }
    pollfd p{pipefd[0], POLLIN, 0};
    int n = poll(&p, 1, killed ? 1000 : static_cast<int>(std::min<long>(left, 1000)));
    if (n > 0) {
      ssize_t got = read(pipefd[0], buf, sizeof buf);
      if (got <= 0) break;
      result.output.append(buf, static_cast<size_t>(got));
    }
  }
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status))
    result.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    result.exit_code = 128 + WTERMSIG(status);
  if (killed) result.output += "\n[test harness: killed after timeout]\n";
  return result;
}

RunResult run_conveyor(const std::vector<std::string>& args, const std::vector<std::string>& env,
                       double timeout_s) {
  std::vector<std::string> argv{CONVEYOR_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, env, timeout_s);
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

model::ModelConfig gpt2_small() {
  model::ModelConfig c;
  c.layers = 12;
  c.heads = 12;
  c.dim = 768;
  c.seq = 1024;
  c.vocab = 50257;
  return c;
}

std::vector<std::string> tiny_model_args(const TinyModel& m) {
  return {"--layers",
          std::to_string(m.layers),
          "--dim",
          "16",
          "--heads",
          "2",
          "--seq",
          "16",
          "--microbatches",
          std::to_string(m.microbatches),
          "--micro-batch-size",
          std::to_string(m.micro_batch_size),
          "--print-every",
          "0"};
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::vector<std::string> field_texts(const std::string& metrics_path, const std::string& key) {
  std::vector<std::string> out;
  std::ifstream in(metrics_path);
  std::string line;
  while (std::getline(in, line)) {
    INFO(line);
    if (!nlohmann::json::parse(line).contains(key)) continue;
    const std::string quoted = "\"" + key + "\": ";
    const auto begin = line.find(quoted) + quoted.size();
    out.push_back(line.substr(begin, line.find_first_of(",}", begin) - begin));
  }
  return out;
}

std::vector<std::string> loss_texts(const std::string& metrics_path) {
  std::vector<std::string> out;
  std::ifstream in(metrics_path);
  std::string line;
  while (std::getline(in, line)) {
    INFO(line);
    REQUIRE(nlohmann::json::parse(line).contains("loss"));
    const std::string key = "\"loss\": ";
    const auto at = line.find(key);
    REQUIRE(at != std::string::npos);
    const auto begin = at + key.size();
    out.push_back(line.substr(begin, line.find_first_of(",}", begin) - begin));
  }
  return out;
}

std::string shell_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string shell_command(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& word : argv) {
    if (!out.empty()) out += ' ';
    out += shell_quoted(word);
  }
  return out;
}

std::vector<std::string> lines_of(const std::string& text, bool skip_empty) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!skip_empty || !line.empty()) out.push_back(line);
  return out;
}

std::map<std::string, std::string> state_checksums(const std::filesystem::path& ckpt) {
  const std::string latest = read_file(ckpt / "LATEST");
  const auto manifest = nlohmann::json::parse(
      read_file(ckpt / latest.substr(0, latest.find('\n')) / "manifest.json"));
  std::map<std::string, std::string> out;
  for (const auto& shard : manifest.at("shards"))
    for (const auto& [path, info] : shard.at("datasets").items())
      if (path.rfind("/params/", 0) == 0 || path.rfind("/optim/", 0) == 0)
        out[path] = info.at("xxh3").get<std::string>();
  REQUIRE(!out.empty());
  return out;
}
}  // namespace conveyor::test
