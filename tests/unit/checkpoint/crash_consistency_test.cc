// Power cuts at every point of the commit protocol. Three saves of a two-stage model (the
// third one's retention deletes the first step) run on a file system that models what each
// fsync made durable (crash_file_system.h); for every k, the run crashes after the k-th
// durability call (a creation, write, fsync, rename or removal), the tree is rewound to what
// a power cut would leave, and the next start must find: every step whose commit returned
// (and retention keeps), complete; no step directory that is incomplete; LATEST naming a
// complete step, never an older one than the last commit returned; and a resume that reads a
// complete step. Once with the shards written synchronously, once the way an async save
// writes them (threads of their own, the commit later from the training thread). And the same
// for a resume from an older step, which moves the newer steps aside: none may be lost.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <thread>

#include "checkpoint/checkpoint.h"
#include "checkpoint/file_system.h"
#include "tests/test_util.h"
#include "tests/unit/checkpoint/crash_file_system.h"
#include "tests/unit/checkpoint/fake_model.h"

namespace fs = std::filesystem;
using namespace conveyor::checkpoint;
using namespace conveyor::checkpoint::testing;

namespace {

constexpr int kStages = 2;
constexpr int kKeep = 2;
const std::vector<int64_t> kSteps = {1, 2, 3};

enum class Shape { kSync, kAsync };

// The shape of an async save (train/stage_checkpoint.cc): each stage writes its shard on a
// thread of its own, concurrently; the commit comes later, from the calling thread, once
// every shard is written. A crash on any thread is the whole process's.
void write_shards_in_background(const fs::path& root, int64_t step) {
  std::atomic<bool> crashed{false};
  std::vector<std::string> errors(kStages);
  std::vector<std::thread> writers;
  for (int s = 0; s < kStages; ++s) {
    writers.emplace_back([&, s] {
      try {
        const auto tensors = fake_stage(s, kStages, step);
        write_shard(begin_step(root, step), contents_of(tensors, s, kStages, step));
      } catch (const Crashed&) {
        crashed = true;
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(s)] = e.what();
      }
    });
  }
  for (auto& w : writers) w.join();
  for (const auto& e : errors) REQUIRE(e.empty());
  if (crashed) throw Crashed{};
}

// What a training run does with the directory: takes it over, cleans up, saves kSteps.
// Returns the steps whose commit_step() returned before the crash.
std::vector<int64_t> save_until_crash(const fs::path& root, Shape shape) {
  std::vector<int64_t> committed;
  try {
    const DirLock lock = DirLock::acquire(root);
    remove_stale_temp_dirs(root);
    for (int64_t step : kSteps) {
      if (shape == Shape::kSync) {
        write_all_shards(root, step, kStages);
      } else {
        write_shards_in_background(root, step);
      }
      commit_step(root, step, kStages, fake_config(), "fake-fingerprint", kKeep);
      committed.push_back(step);
    }
  } catch (const Crashed&) {
  }
  return committed;
}

bool contains(const std::vector<int64_t>& steps, int64_t step) {
  return std::find(steps.begin(), steps.end(), step) != steps.end();
}

// `step_dir` passes verification and holds what was saved at `step`, read by name.
void check_holds_step(const fs::path& step_dir, int64_t step) {
  INFO(step_dir.string());
  REQUIRE(verify(step_dir).step == step);
  CheckpointReader reader(step_dir);
  for (int s = 0; s < kStages; ++s) {
    for (const auto& t : fake_stage(s, kStages, step)) {
      for (const auto& [group, want] :
           {std::pair{kParams, &t.param}, std::pair{kExpAvg, &t.exp_avg},
            std::pair{kExpAvgSq, &t.exp_avg_sq}}) {
        std::vector<float> got(want->size());
        reader.read(group, t.name, got.data(), got.size());
        CHECK(got == *want);
      }
    }
  }
  CHECK(reader.state().at("step") == step);
}

std::optional<int64_t> step_of(const std::optional<fs::path>& dir) {
  if (!dir) return std::nullopt;
  return parse_step_dir_name(dir->filename().string());
}

// The next start after the crash (what train/stage_checkpoint.cc does), then its checks.
void check_recovery(const fs::path& root, const std::vector<int64_t>& committed) {
  const DirLock lock = DirLock::acquire(root);
  remove_stale_temp_dirs(root);
  const auto present = list_committed_steps(root);  // newest first

  // Every step directory is complete: committed, or the one whose commit the crash cut.
  const int64_t cut = committed.size() < kSteps.size() ? kSteps[committed.size()] : -1;
  for (int64_t step : present) {
    CHECK((contains(committed, step) || step == cut));
    check_holds_step(root / step_dir_name(step), step);
  }
  // Every committed step that retention keeps is there (the cut commit's retention may
  // already have run, once that step was durable).
  auto kept = committed;
  if (contains(present, cut)) kept.push_back(cut);
  std::sort(kept.begin(), kept.end(), std::greater<>());
  if (kept.size() > kKeep) kept.resize(kKeep);
  for (int64_t step : kept) CHECK(contains(present, step));

  // LATEST names a complete step, never one older than the last commit that returned.
  std::optional<int64_t> latest;
  if (fs::exists(root / kLatestFile)) {
    const auto text = conveyor::test::read_file(root / kLatestFile);
    latest = parse_step_dir_name(text.substr(0, text.find('\n')));
    REQUIRE(latest.has_value());
    CHECK(contains(present, *latest));
  }
  if (!committed.empty()) {
    REQUIRE(latest.has_value());
    CHECK(*latest >= committed.back());
  }

  // A resume reads that step (or, with no LATEST yet, the newest complete one).
  const auto resumed = step_of(find_latest(root));
  if (latest) {
    CHECK(resumed == latest);
  } else {
    CHECK(resumed == (present.empty() ? std::nullopt : std::optional<int64_t>(present.front())));
  }

  // And the directory takes the next save.
  save_step(root, 10, kStages, kKeep);
  CHECK(step_of(find_latest(root)) == 10);
}

void crash_at_every_call(Shape shape) {
  int points = 0;
  for (int k = 1;; ++k) {
    conveyor::test::TempDir dir;
    const auto root = dir.path() / "ckpt";
    CrashFileSystem files(dir.path());
    const InstalledFileSystem installed(files);
    files.crash_after(k);
    const auto committed = save_until_crash(root, shape);
    if (!files.crashed()) {
      REQUIRE(committed == kSteps);  // k is past the last call: every point was tried
      break;
    }
    ++points;
    const auto calls = files.calls();
    std::string before;
    for (size_t i = calls.size() > 16 ? calls.size() - 16 : 0; i + 1 < calls.size(); ++i)
      before += "\n  " + calls[i];
    INFO("crashed after call " << k << ": " << calls.back() << "\nthe calls before it:" << before);
    files.crash();
    check_recovery(root, committed);
  }
  // Three saves of two shards make dozens of calls; a seam bypassed would make fewer.
  CHECK(points >= 3 * 20);
}

}  // namespace

TEST_CASE("a crash at any point of a sync save keeps every committed step", "[checkpoint]") {
  crash_at_every_call(Shape::kSync);
}

TEST_CASE("a crash at any point of an async save keeps every committed step", "[checkpoint]") {
  crash_at_every_call(Shape::kAsync);
}

TEST_CASE("a crash while newer steps are moved aside loses none of them", "[checkpoint]") {
  int points = 0;
  for (int k = 1;; ++k) {
    conveyor::test::TempDir dir;
    const auto root = dir.path() / "ckpt";
    for (int64_t step : kSteps) save_step(root, step, kStages);
    CrashFileSystem files(dir.path());  // the three steps are durable
    const InstalledFileSystem installed(files);
    files.crash_after(k);
    try {
      move_aside_steps_after(root, 1);  // a run that resumes from step 1
    } catch (const Crashed&) {
    }
    if (!files.crashed()) break;
    ++points;
    INFO("crashed after call " << k << ": " << files.calls().back());
    files.crash();

    check_holds_step(root / step_dir_name(1), 1);
    for (int64_t step : {2, 3}) {
      const auto in_root = root / step_dir_name(step);
      const auto aside = root / kAbandonedDir / step_dir_name(step);
      REQUIRE((fs::exists(in_root) || fs::exists(aside)));
      check_holds_step(fs::exists(in_root) ? in_root : aside, step);
    }
    const auto latest = step_of(find_latest(root));
    REQUIRE(latest.has_value());
    CHECK(fs::exists(root / step_dir_name(*latest)));
  }
  CHECK(points >= 4);
}
