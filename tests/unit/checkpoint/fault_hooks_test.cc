// Fault injection goes through an installed FaultHooks object (the `conveyor` binary fills it
// from CONVEYOR_FAULT_* once at start-up); the libraries never read the environment for it.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "checkpoint/checkpoint.h"
#include "checkpoint/fault_injection.h"
#include "common/error.h"
#include "tests/test_util.h"
#include "tests/unit/checkpoint/fake_model.h"

namespace fault = conveyor::checkpoint::fault;
using namespace conveyor::checkpoint::testing;

TEST_CASE("FaultHooks parse STEP[:STAGE] as the environment variables did", "[checkpoint]") {
  fault::FaultHooks h;
  CHECK(h.empty());
  CHECK(h.arm(fault::kFailSave, "10"));
  CHECK(h.arm(fault::kKillInSave, "7:1"));
  CHECK_FALSE(h.arm(fault::kKillAfterCommit, ""));
  CHECK_FALSE(h.arm(fault::kKillAfterCommit, ":3"));
  CHECK_FALSE(h.arm(fault::kKillAfterCommit, "x"));
  CHECK_FALSE(h.empty());

  CHECK(h.armed(fault::kFailSave, 10));
  CHECK(h.armed(fault::kFailSave, 10, 0));
  CHECK(h.armed(fault::kFailSave, 10, 3));
  CHECK_FALSE(h.armed(fault::kFailSave, 11, 0));
  CHECK(h.armed(fault::kKillInSave, 7, 1));
  CHECK(h.armed(fault::kKillInSave, 7));  // no stage asked: any trigger of the step
  CHECK_FALSE(h.armed(fault::kKillInSave, 7, 0));
  CHECK_FALSE(h.armed(fault::kKillAfterCommit, 0));
  CHECK_FALSE(h.armed(fault::kSlowSnapshot, 10));

  fault::FaultHooks direct;
  direct.arm(fault::kSlowSnapshot, 4, 2);
  direct.arm(fault::kKillBeforeCommit, 5);
  CHECK(direct.armed(fault::kSlowSnapshot, 4, 2));
  CHECK_FALSE(direct.armed(fault::kSlowSnapshot, 4, 1));
  CHECK(direct.armed(fault::kKillBeforeCommit, 5, 9));
}

TEST_CASE("installed hooks fire in write_shard, and the environment alone does not",
          "[checkpoint]") {
  conveyor::test::TempDir dir;
  // Set in this process, but nothing reads it: only installed hooks count.
  ::setenv(fault::kFailSave, "3", 1);
  CHECK_NOTHROW(save_step(dir.path() / "env", 3, 2));
  ::unsetenv(fault::kFailSave);

  fault::FaultHooks hooks;
  hooks.arm(fault::kFailSave, 3, 1);
  fault::install(hooks);
  CHECK(fault::armed(fault::kFailSave, 3, 1));
  CHECK_FALSE(fault::armed(fault::kFailSave, 3, 0));
  try {
    write_all_shards(dir.path() / "hooked", 3, 2);
    FAIL("no throw");
  } catch (const conveyor::Error& e) {
    CHECK(e.kind() == conveyor::ErrorKind::kRuntime);
    CHECK_THAT(e.message(), Catch::Contains("stage 1") && Catch::Contains("injected failure"));
  }
  fault::install({});
  CHECK_FALSE(fault::armed(fault::kFailSave, 3, 1));
  CHECK_NOTHROW(save_step(dir.path() / "after", 3, 2));
}
