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
#include "transport/wire.h"

using namespace conveyor;
using namespace conveyor::transport;
using conveyor::test::JobSpec;
using conveyor::test::run_job;

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
