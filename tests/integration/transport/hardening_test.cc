// Start-up inputs a job may get wrong or a host may expose: a job token too long for the
// wire, and what a one-host job listens on.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <dirent.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "common/error.h"
#include "tests/integration/transport/multi_rank.h"
#include "transport/bootstrap/wire.h"

using namespace conveyor;
using namespace conveyor::transport;
using conveyor::test::JobSpec;
using conveyor::test::run_job;

namespace {

// The socket inodes this process holds ("socket:[123]" links in /proc/self/fd).
std::set<std::string> own_socket_inodes() {
  std::set<std::string> inodes;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) {
      char target[128] = {};
      const std::string link = std::string("/proc/self/fd/") + e->d_name;
      const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
      const std::string t(target, n > 0 ? static_cast<size_t>(n) : 0);
      if (t.rfind("socket:[", 0) == 0) inodes.insert(t.substr(8, t.size() - 9));
    }
    ::closedir(d);
  }
  return inodes;
}

// The IPv4 and IPv6 addresses this process's TCP sockets listen on, e.g. "127.0.0.1" or
// "192.0.2.2" or "::" (from /proc/net/tcp{,6}, matched to our sockets by inode).
std::set<std::string> own_listen_addresses() {
  const auto mine = own_socket_inodes();
  std::set<std::string> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (state != "0A" || !mine.count(inode)) continue;  // 0A: LISTEN
      const std::string hex = local.substr(0, local.find(':'));
      if (hex.size() == 8) {
        in_addr a{};
        a.s_addr = static_cast<uint32_t>(std::stoul(hex, nullptr, 16));  // in host order
        char text[INET_ADDRSTRLEN] = {};
        inet_ntop(AF_INET, &a, text, sizeof text);
        out.insert(text);
      } else {
        in6_addr a{};
        for (int w = 0; w < 4; ++w) {
          const uint32_t word =
              static_cast<uint32_t>(std::stoul(hex.substr(8 * w, 8), nullptr, 16));
          std::memcpy(&a.s6_addr[4 * w], &word, 4);
        }
        char text[INET6_ADDRSTRLEN] = {};
        inet_ntop(AF_INET6, &a, text, sizeof text);
        out.insert(text);
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("a job token too long for the hello is a usage error naming CONVEYOR_JOB_TOKEN",
          "[transport][hardening]") {
  JobSpec spec;
  spec.world = 2;
  spec.token = std::string(70000, 't');  // over the pre-auth limit of the wire
  auto out = run_job(spec, [](int, Options o) {
    auto t = Transport::create(o);
    t->shutdown(Deadline::after_seconds(10));
    return std::string("joined");
  });
  for (int r = 0; r < spec.world; ++r) {
    INFO("rank " << r << ": " << out[r].text);
    CHECK(out[r].exit_code == 2);
    CHECK_THAT(out[r].text, Catch::Contains("CONVEYOR_JOB_TOKEN"));
    CHECK_THAT(out[r].text, Catch::Contains(std::to_string(wire::kMaxJobTokenBytes)));
  }
}

TEST_CASE("every rank of a one-host job listens on loopback only", "[transport][hardening]") {
  JobSpec spec;
  spec.world = 2;
  spec.ucx_tls = "tcp";  // UCX's TCP transport is the one that listens
  auto out = run_job(spec, [](int, Options o) {
    auto t = Transport::create(o);
    std::string addresses;
    for (const auto& a : own_listen_addresses()) addresses += a + " ";
    t->shutdown(Deadline::after_seconds(10));
    return addresses;
  });
  for (int r = 0; r < spec.world; ++r) {
    INFO("rank " << r << " listens on: " << out[r].text);
    REQUIRE(out[r].exit_code == 0);
    std::istringstream words(out[r].text);
    std::string a;
    int n = 0;
    while (words >> a) {
      ++n;
      CHECK((a.rfind("127.", 0) == 0 || a == "::1"));
    }
    CHECK(n >= 1);  // UCX's TCP interface listens somewhere: this test sees it
  }
}
