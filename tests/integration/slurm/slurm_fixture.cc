#include "tests/integration/slurm/slurm_fixture.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

namespace conveyor::test {

namespace {

const std::string kScript =
    std::string(CONVEYOR_SOURCE_DIR) + "/tests/integration/slurm/slurm_cluster.sh";

// Run through bash, so a lost executable bit does not matter.
RunResult run_script(const std::vector<std::string>& args, double timeout_s) {
  std::vector<std::string> argv{"bash", kScript};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, {}, timeout_s);
}

// "KEY=value" lines of cluster.env. The script writes them with printf %q; the values it
// writes (paths without whitespace, host names, pids) come out unquoted.
std::map<std::string, std::string> read_env(const std::filesystem::path& file) {
  std::map<std::string, std::string> env;
  for (const auto& line : lines_of(read_file(file), /*skip_empty=*/true)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

// Fields 3.. of /proc/PID/stat (after "pid (comm)", whose comm may hold spaces), or empty
// when the process is gone.
std::vector<std::string> stat_fields(int pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(stat.substr(close + 1));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;  // [0] state, [1] ppid, [2] pgrp, [3] session, ...
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

bool process_alive(int pid) {
  const auto f = stat_fields(pid);
  return !f.empty() && f[0] != "Z";  // an orphan's zombie lingers until init reaps it
}

std::string SlurmCluster::unavailable() {
  static const std::string why = [] {
    if (geteuid() != 0) return std::string("the Slurm cluster fixture needs root");
    try {
      const auto r = run_script({"check"}, 30);
      if (r.exit_code == 0) return std::string();
      return "slurm_cluster.sh check: " + trimmed(r.output);
    } catch (const std::exception& e) {
      return std::string("cannot run slurm_cluster.sh: ") + e.what();
    }
  }();
  return why;
}

SlurmCluster::SlurmCluster() {
  const auto up = run_script({"up", dir_.str()}, 90);
  {
    INFO("slurm_cluster.sh up " << dir_.str() << ":\n" << up.output);
    REQUIRE(up.exit_code == 0);  // a failed `up` has torn itself down
  }
  auto env = read_env(dir_ / "cluster.env");
  conf_ = env["SLURM_CONF"];
  for (const char* key : {"CLUSTER_NODE_0", "CLUSTER_NODE_1"})
    if (!env[key].empty()) nodes_.push_back(env[key]);
  const std::pair<const char*, std::string> daemons[] = {
      {"CLUSTER_MUNGED_PID", "munged"},
      {"CLUSTER_SLURMCTLD_PID", "slurmctld"},
      {"CLUSTER_SLURMD_PID_0", "slurmd " + env["CLUSTER_NODE_0"]},
      {"CLUSTER_SLURMD_PID_1", "slurmd " + env["CLUSTER_NODE_1"]}};
  for (const auto& [key, what] : daemons)
    if (!env[key].empty()) daemons_.push_back({std::stoi(env[key]), what});
  if (conf_.empty() || nodes_.size() != 2 || daemons_.size() != 4) {
    // The destructor will not run for a constructor that throws: tear down here.
    run_script({"down", dir_.str()}, 90);
    FAIL("cluster.env is incomplete:\n" << read_file(dir_ / "cluster.env"));
  }
}

SlurmCluster::~SlurmCluster() {
  try {
    const auto down = run_script({"down", dir_.str()}, 90);
    if (!down.output.empty() || down.exit_code != 0)
      std::printf("slurm_cluster.sh down (exit %d): %s\n", down.exit_code, down.output.c_str());
  } catch (const std::exception& e) {
    std::printf("slurm_cluster.sh down failed to run: %s\n", e.what());
  }
}

std::vector<SlurmCluster::Process> SlurmCluster::processes() const {
  std::vector<Process> out;
  for (const auto& d : daemons_)
    if (process_alive(d.pid)) out.push_back(d);
  // slurmstepd's command line is "slurmstepd: [job.step]"; slurmd hands it its own
  // environment, SLURM_CONF included, which tells this cluster's from any other's.
  const std::string mark = "SLURM_CONF=" + conf_;
  std::set<std::string> sessions;
  std::vector<std::pair<int, std::string>> all;  // pid, session
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const int pid = std::stoi(name);
    const auto f = stat_fields(pid);
    if (f.size() < 4 || f[0] == "Z") continue;
    all.emplace_back(pid, f[3]);
    const auto exe = std::filesystem::read_symlink(entry.path() / "exe", ec);
    if (ec || exe.filename().string().rfind("slurmstepd", 0) != 0) continue;
    std::istringstream environ(read_file(entry.path() / "environ"));
    for (std::string var; std::getline(environ, var, '\0');)
      if (var == mark) {
        out.push_back({pid, "slurmstepd"});
        sessions.insert(f[3]);
        break;
      }
  }
  std::set<int> listed;
  for (const auto& p : out) listed.insert(p.pid);
  for (const auto& [pid, session] : all)
    if (sessions.count(session) && !listed.count(pid)) {
      std::string cmd = read_file("/proc/" + std::to_string(pid) + "/cmdline");
      for (char& c : cmd)
        if (c == '\0') c = ' ';
      out.push_back({pid, "task " + trimmed(cmd)});
    }
  return out;
}

}  // namespace conveyor::test
