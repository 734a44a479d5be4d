// Host lists of a multi-host launch (launcher/launch/hostfile.h) and the launcher channel's lines
// (launcher/launch/launcher_channel.h).
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include "common/error.h"
#include "launcher/launch/hostfile.h"
#include "launcher/launch/launcher_channel.h"
#include "tests/test_util.h"

using namespace conveyor;
using namespace conveyor::cli;

namespace {

std::vector<std::pair<std::string, int>> flat(const std::vector<HostSlots>& hosts) {
  std::vector<std::pair<std::string, int>> out;
  for (const auto& h : hosts) out.emplace_back(h.host, h.slots);
  return out;
}

}  // namespace

TEST_CASE("a DeepSpeed-style hostfile gives hosts and slots in order", "[launcher]") {
  test::TempDir dir;
  test::write_file(dir / "hosts",
                   "# our nodes\n"
                   "worker-1 slots=4\n"
                   "\n"
                   "  10.0.0.2   slots=2   # the small one\n"
                   "root@worker-3\n");
  CHECK(flat(read_hostfile((dir / "hosts").string())) ==
        std::vector<std::pair<std::string, int>>{
            {"worker-1", 4}, {"10.0.0.2", 2}, {"root@worker-3", 1}});
}

TEST_CASE("a bad hostfile line is named by file and line", "[launcher]") {
  test::TempDir dir;
  const auto path = (dir / "hosts").string();
  auto refused = [&](const std::string& text, const std::string& mention) {
    test::write_file(path, text);
    INFO(text);
    try {
      read_hostfile(path);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kUsage);
      CHECK_THAT(e.message(), Catch::Contains(mention));
    }
  };
  refused("a slots=2\nb slot=2\n", path + ":2: 'slot=2' is not slots=N");
  refused("a slots=x\n", path + ":1: slots 'x' is not a whole number");
  refused("a slots=2\na slots=1\n", path + ":2: host a is listed twice");
  refused("# nothing\n\n", "lists no host");
  refused("a;reboot slots=1\n", "'a;reboot' is not a host name");
}

TEST_CASE("the hosts flag takes h1:2,h2:2 with one slot by default", "[launcher]") {
  CHECK(flat(parse_hosts("n1:2,n2")) ==
        std::vector<std::pair<std::string, int>>{{"n1", 2}, {"n2", 1}});
  CHECK_THROWS_AS(parse_hosts(""), Error);
  CHECK_THROWS_AS(parse_hosts("n1:2,"), Error);
  CHECK_THROWS_AS(parse_hosts("n1:-1"), Error);
}

TEST_CASE("a host listed twice is refused whatever the case of its name", "[launcher]") {
  // DNS names are case-insensitive: N1 and n1 are one host, which would then run two
  // supervisors whose LOCAL_RANKs collide.
  test::TempDir dir;
  const auto path = (dir / "hosts").string();
  auto refused = [](auto read, const std::string& mention) {
    try {
      read();
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kUsage);
      CHECK_THAT(e.message(), Catch::Contains(mention));
    }
  };
  test::write_file(path, "N1 slots=2\nn1 slots=1\n");
  refused([&] { read_hostfile(path); }, path + ":2: host n1 is listed twice");
  refused([] { parse_hosts("Node-1:2,node-1:1"); }, "host node-1 is listed twice");
  // The same host under another login is still the same host.
  refused([] { parse_hosts("alice@gpu1,bob@GPU1"); }, "host bob@GPU1 is listed twice");
  CHECK(parse_hosts("n1,n2").size() == 2);
}

TEST_CASE("the launcher channel carries the token, then signals, then its end", "[launcher]") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  LauncherChannel channel(fds[0]);
  const std::string first =
      LauncherChannel::token_line("abc123") + LauncherChannel::signal_line(10);
  REQUIRE(write(fds[1], first.data(), first.size()) == static_cast<ssize_t>(first.size()));
  CHECK(channel.read_token(Deadline::after_seconds(10)) == "abc123");
  CHECK(channel.poll_once() == 10);  // SIGUSR1, sent after the token
  CHECK(channel.poll_once() == 0);
  CHECK_FALSE(channel.closed());
  close(fds[1]);
  CHECK(channel.poll_once() == SIGTERM);  // the launcher is gone: stop
  CHECK(channel.closed());
  close(fds[0]);
}

TEST_CASE("a supervisor given no token on stdin refuses to start", "[launcher]") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const std::string junk = "hello\n";
  REQUIRE(write(fds[1], junk.data(), junk.size()) == static_cast<ssize_t>(junk.size()));
  LauncherChannel channel(fds[0]);
  CHECK_THROWS_AS(channel.read_token(Deadline::after_seconds(10)), Error);
  close(fds[0]);
  close(fds[1]);
}
