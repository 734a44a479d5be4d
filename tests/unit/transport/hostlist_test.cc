// Slurm's compressed host lists (transport/bootstrap/hostlist.h).
#include <catch2/catch.hpp>

#include "common/error.h"
#include "transport/bootstrap/hostlist.h"

using namespace conveyor;
using conveyor::transport::expand_hostlist;
using Hosts = std::vector<std::string>;

TEST_CASE("host lists expand as Slurm writes them", "[transport]") {
  CHECK(expand_hostlist("login") == Hosts{"login"});
  CHECK(expand_hostlist("n[1-3,7]") == Hosts{"n1", "n2", "n3", "n7"});
  CHECK(expand_hostlist("n[1-3,7],login") == Hosts{"n1", "n2", "n3", "n7", "login"});
  CHECK(expand_hostlist("node[08-10]") == Hosts{"node08", "node09", "node10"});
  CHECK(expand_hostlist("a,b[2],c") == Hosts{"a", "b2", "c"});
  CHECK(expand_hostlist("gpu[1-2]-ib") == Hosts{"gpu1-ib", "gpu2-ib"});
  CHECK(expand_hostlist("r[1-2]n[3,5]") == Hosts{"r1n3", "r1n5", "r2n3", "r2n5"});
}

TEST_CASE("malformed host lists are refused naming the list", "[transport]") {
  for (const char* bad : {"", "n[1-3", "n1-3]", "n[]", "n[3-1]", "n[1,]", "n[a-b]", ",n1", "n[[1]]",
                          "n[1-100000000]", "n[1-1024]m[1-1025]"}) {
    INFO(bad);
    try {
      expand_hostlist(bad);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kUsage);
      CHECK_THAT(e.message(), Catch::Contains(std::string("host list '") + bad + "'"));
    }
  }
}
