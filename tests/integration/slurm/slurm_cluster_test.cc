// The Slurm cluster fixture itself: srun spreads tasks over both nodes with Slurm's usual
// environment, sbatch --wait runs a batch job on both, the node names resolve to this
// machine, and nothing of the cluster runs once the fixture is gone.
#include <catch2/catch.hpp>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/slurm/slurm_fixture.h"

using namespace conveyor::test;

namespace {

// The hosts of a Slurm node list, expanded by Slurm itself.
std::vector<std::string> hostnames(const SlurmCluster& cluster, const std::string& nodelist) {
  const auto r = run_program({"scontrol", "show", "hostnames", nodelist}, cluster.env(), 30);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  return lines_of(r.output, /*skip_empty=*/true);
}

// Whether some address `name` resolves to can be bound here, i.e. belongs to this machine.
bool resolves_locally(const std::string& name) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(name.c_str(), nullptr, &hints, &res) != 0) return false;
  bool local = false;
  for (auto* a = res; a && !local; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    local = bind(fd, a->ai_addr, a->ai_addrlen) == 0;  // port 0: any free one
    close(fd);
  }
  freeaddrinfo(res);
  return local;
}

}  // namespace

TEST_CASE("slurm cluster: srun -N2 -n4 runs two tasks on each node", "[slurm]") {
  SKIP_WITHOUT_SLURM();
  SlurmCluster cluster;
  REQUIRE(cluster.nodes().size() == 2);
  const auto r = run_program(
      {"srun", "-N2", "-n4", "sh", "-c",
       "echo $SLURM_PROCID $SLURM_NTASKS $SLURM_LOCALID $SLURM_JOB_NODELIST $SLURMD_NODENAME"},
      cluster.env(), 60);
  INFO("srun output:\n" << r.output);
  REQUIRE(r.exit_code == 0);

  std::set<int> procids;
  std::map<std::string, std::multiset<int>> local_ids;  // by node
  std::set<std::string> nodelists;
  std::string node_of_task0;
  int lines = 0;
  for (const auto& line : lines_of(r.output, /*skip_empty=*/true)) {
    if (line.rfind("srun: ", 0) == 0) continue;  // srun's own notes, if any
    ++lines;
    std::istringstream in(line);
    int procid = -1, ntasks = -1, localid = -1;
    std::string nodelist, node, extra;
    REQUIRE((in >> procid >> ntasks >> localid >> nodelist >> node));
    CHECK_FALSE(in >> extra);
    CHECK(ntasks == 4);
    procids.insert(procid);
    local_ids[node].insert(localid);
    nodelists.insert(nodelist);
    if (procid == 0) node_of_task0 = node;
  }
  CHECK(lines == 4);
  CHECK(procids == std::set<int>{0, 1, 2, 3});
  const std::multiset<int> two{0, 1};
  CHECK(local_ids == std::map<std::string, std::multiset<int>>{{cluster.nodes()[0], two},
                                                               {cluster.nodes()[1], two}});
  // One job, one node list, naming both nodes in the fixture's order; task 0 on the first
  // (what rank 0's MASTER_ADDR is taken from).
  REQUIRE(nodelists.size() == 1);
  CHECK(hostnames(cluster, *nodelists.begin()) == cluster.nodes());
  CHECK(node_of_task0 == cluster.nodes()[0]);
}

TEST_CASE("slurm cluster: sbatch --wait runs a batch job on both nodes", "[slurm]") {
  SKIP_WITHOUT_SLURM();
  SlurmCluster cluster;
  TempDir tmp;
  const auto out = tmp / "out.txt";
  write_file(tmp / "job.sh",
             "#!/bin/sh\n"
             "srun sh -c 'echo $SLURM_PROCID $SLURMD_NODENAME' > " +
                 out.string() + "\n");
  const auto r = run_program({"sbatch", "--wait", "-N2", "-n2", "--chdir=" + tmp.str(),
                              "--output=" + (tmp / "job.log").string(), (tmp / "job.sh").string()},
                             cluster.env(), 90);
  INFO("sbatch output:\n" << r.output << "\njob.log:\n" << read_file(tmp / "job.log"));
  REQUIRE(r.exit_code == 0);
  const auto lines = lines_of(read_file(out), /*skip_empty=*/true);
  CHECK(std::multiset<std::string>(lines.begin(), lines.end()) ==
        std::multiset<std::string>{"0 " + cluster.nodes()[0], "1 " + cluster.nodes()[1]});
}

TEST_CASE("slurm cluster: node names resolve to an address of this machine", "[slurm]") {
  SKIP_WITHOUT_SLURM();
  SlurmCluster cluster;
  REQUIRE(cluster.nodes().size() == 2);
  CHECK(cluster.nodes()[0] != cluster.nodes()[1]);
  for (const auto& node : cluster.nodes()) {
    INFO("node " << node);
    CHECK(resolves_locally(node));
  }
}

TEST_CASE("slurm cluster: no daemon or job process survives the fixture", "[slurm]") {
  SKIP_WITHOUT_SLURM();
  auto cluster = std::make_unique<SlurmCluster>();
  const auto env = cluster->env();
  // A job still running when the fixture goes: a batch step and a step on both nodes.
  const auto r = run_program(
      {"sbatch", "-N2", "-n2", "--output=/dev/null", "--wrap", "srun sleep 300"}, env, 30);
  INFO("sbatch output:\n" << r.output);
  REQUIRE(r.exit_code == 0);
  // Bounded poll until the steps' processes exist: slurmstepd for the batch script and
  // for step 0 on each node, and step 0's two `sleep` tasks.
  std::vector<SlurmCluster::Process> seen;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    seen = cluster->processes();
    int stepds = 0, sleeps = 0;
    for (const auto& p : seen) {
      stepds += p.what == "slurmstepd";
      sleeps += p.what.rfind("task ", 0) == 0 && p.what.find("sleep 300") != std::string::npos &&
                p.what.find("srun") == std::string::npos;
    }
    if (stepds >= 3 && sleeps == 2) break;
    INFO("cluster processes: " << seen.size());
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  int daemons = 0;
  for (const auto& p : seen)
    daemons += p.what == "munged" || p.what == "slurmctld" || p.what.rfind("slurmd ", 0) == 0;
  CHECK(daemons == 4);

  cluster.reset();
  for (const auto& p : seen) {
    INFO(p.what << " pid " << p.pid);
    CHECK_FALSE(process_alive(p.pid));
  }
}
