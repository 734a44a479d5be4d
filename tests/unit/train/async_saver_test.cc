// The async save's state machine (train/async_saver.h), with work that records what ran.
#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>

#include "common/error.h"
#include "train/async_saver.h"

using namespace conveyor;
using namespace conveyor::pipeline;

TEST_CASE("an async save commits once every rank has written, on the committing rank only") {
  AsyncSaver saver;
  std::atomic<int> copies = 0, writes = 0;
  int64_t committed = -1;
  saver.start(10, {[&] { ++copies; }, [&] { ++writes; }});
  saver.before_update();  // returns once the copy is done
  CHECK(copies == 1);
  CHECK(saver.in_flight());
  CHECK(saver.wait_for_write().written == 1);
  CHECK(writes == 1);
  saver.on_progress({1, 0}, 2, [&](int64_t step) { committed = step; });  // one of two ranks
  CHECK(saver.in_flight());
  saver.on_progress({2, 0}, 2, [&](int64_t step) { committed = step; });
  CHECK_FALSE(saver.in_flight());
  saver.join_commit();
  CHECK(committed == 10);
  CHECK(saver.idle());
  CHECK(saver.take_failed_step() == -1);
}

TEST_CASE("an async save that fails anywhere is dropped and training goes on") {
  AsyncSaver saver;
  bool committed = false;
  saver.start(20, {[] {}, [] { throw std::runtime_error("disk full"); }});
  CHECK(saver.wait_for_write().failed == 1);
  saver.on_progress({1, 1}, 2, [&](int64_t) { committed = true; });
  CHECK(saver.idle());
  CHECK_FALSE(committed);
  CHECK(saver.take_failed_step() == 20);
  CHECK(saver.take_failed_step() == -1);

  saver.start(30, {[] { throw std::runtime_error("no memory"); }, [] {}});
  saver.before_update();  // a failed copy does not leave the update waiting
  CHECK(saver.wait_for_write().failed == 1);
}

TEST_CASE("a failed background commit is reported by the next join") {
  AsyncSaver saver;
  saver.start(40, {[] {}, [] {}});
  saver.wait_for_write();
  saver.on_progress({1, 0}, 1, [](int64_t) { throw std::runtime_error("rename failed"); });
  CHECK_THROWS_WITH(saver.join_commit(), Catch::Contains("committing checkpoint step 40 failed"));
  CHECK(saver.idle());
}
