#include "bench/bench_checkpoint.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "common/error.h"
#include "common/log.h"
#include "common/stats.h"
#include "launcher/launch/supervisor.h"
#include "model/param_table.h"

extern char** environ;

namespace conveyor::cli {

namespace {

namespace fs = std::filesystem;

struct Options {
  int mib = 256;    // params + exp_avg + exp_avg_sq of one shard
  int tensors = 8;  // per group, like a stage's larger weights
  int repeats = 3;
  std::string dir;  // default: a fresh folder in $TMPDIR
  bool stall = true;
  // The stall runs: a 1-stage model of about 3.2M parameters (38 MB of params + Adam state).
  int layers = 4, dim = 256, heads = 4, seq = 64, microbatches = 2, micro_batch_size = 4;
  int steps = 44, save_every = 2, threads = 1;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs argv (searched in PATH) with output discarded; returns its exit status.
int spawn_quiet(const std::vector<std::string>& argv) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, cargv[0], &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  CONVEYOR_CHECK(rc == 0, "bench checkpoint: cannot start {}: {}", argv[0], std::strerror(rc));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// One shard's worth of tensors: `tensors` per group, filled with random-looking floats so no
// layer below can cheat with zero pages or compression.
struct Shard {
  std::vector<std::vector<float>> data;  // 3 * tensors buffers
  checkpoint::ShardContents contents;
};

Shard make_shard(const Options& o) {
  const size_t total_floats = size_t(o.mib) * (1 << 20) / sizeof(float);
  const size_t per_tensor = std::max<size_t>(1, total_floats / (3 * size_t(o.tensors)));
  Shard s;
  uint32_t x = 0x12345678u;
  for (int g = 0; g < 3; ++g) {
    for (int t = 0; t < o.tensors; ++t) {
      auto& buf = s.data.emplace_back(per_tensor);
      for (auto& f : buf) {
        x = x * 1664525u + 1013904223u;
        f = static_cast<float>(static_cast<int32_t>(x)) * 1e-9f;
      }
      auto& list = g == 0 ? s.contents.params : g == 1 ? s.contents.exp_avg : s.contents.exp_avg_sq;
      list.push_back({model::layer_param_name(t, "mlp.fc.weight"),
                      {static_cast<int64_t>(per_tensor)},
                      buf.data()});
    }
  }
  return s;
}

nlohmann::ordered_json bench_write(const Options& o, const fs::path& dir) {
  Shard shard = make_shard(o);
  size_t bytes = 0;
  for (const auto& b : shard.data) bytes += b.size() * sizeof(float);
  const auto root = dir / "ckpt";
  std::vector<double> save_s, write_s, dd_s;
  for (int r = 0; r < o.repeats; ++r) {
    // Our save, as the trainer does it with one stage.
    shard.contents.step = r + 1;
    auto t0 = std::chrono::steady_clock::now();
    const auto tmp = checkpoint::begin_step(root, r + 1);
    checkpoint::write_shard(tmp, shard.contents);
    checkpoint::commit_step(root, r + 1, 1, nlohmann::json::object(), "bench", 0);
    save_s.push_back(seconds_since(t0));
    fs::remove_all(root / checkpoint::step_dir_name(r + 1));

    // The same buffers with write(2) + fsync.
    const auto raw = dir / "raw.bin";
    t0 = std::chrono::steady_clock::now();
    {
      const int fd = ::open(raw.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      CONVEYOR_CHECK(fd >= 0, "bench checkpoint: cannot create {}: {}", raw.string(),
                     std::strerror(errno));
      for (const auto& b : shard.data) {
        const char* p = reinterpret_cast<const char*>(b.data());
        size_t left = b.size() * sizeof(float);
        while (left > 0) {
          const ssize_t n = ::write(fd, p, left);
          CONVEYOR_CHECK(n > 0 || errno == EINTR, "bench checkpoint: write failed: {}",
                         std::strerror(errno));
          if (n > 0) p += n, left -= size_t(n);
        }
      }
      CONVEYOR_CHECK(::fsync(fd) == 0, "bench checkpoint: fsync failed: {}", std::strerror(errno));
      ::close(fd);
    }
    write_s.push_back(seconds_since(t0));
    fs::remove(raw);

    // The outside reference: dd of the same number of bytes (rounded up to 4 MiB blocks).
    const size_t blocks = (bytes + (4u << 20) - 1) / (4u << 20);
    const auto dd_file = dir / "dd.bin";
    t0 = std::chrono::steady_clock::now();
    const int code = spawn_quiet({"dd", "if=/dev/zero", "of=" + dd_file.string(), "bs=4M",
                                  fmt::format("count={}", blocks), "conv=fsync"});
    const double s = seconds_since(t0);
    CONVEYOR_CHECK(code == 0, "bench checkpoint: dd failed (exit {})", code);
    dd_s.push_back(s * double(bytes) / double(blocks * (4u << 20)));  // same bytes as ours
    fs::remove(dd_file);
  }
  fs::remove_all(root);
  const double save = double(bytes) / median(save_s) / 1e6;
  const double dd = double(bytes) / median(dd_s) / 1e6;
  return {{"bench", "checkpoint_write"},
          {"bytes", bytes},
          {"repeats", o.repeats},
          {"save_MBps", std::round(save * 10) / 10},
          {"write_MBps", std::round(double(bytes) / median(write_s) / 1e6 * 10) / 10},
          {"dd_MBps", std::round(dd * 10) / 10},
          {"ratio", std::round(save / dd * 1000) / 1000}};
}

// One 1-stage training run. The trainer flushes a metrics line at the end of every step,
// before that step's save; the line's arrival time (polled every 0.5 ms) marks the step
// boundary. Returns the seconds from the end of step `save_every` (the first save) to the end
// of step `steps - 1` (before the final save, which is synchronous-like in every mode), and
// the median step_ms the trainer reports.
struct RunTimes {
  double window_s = 0, step_ms = 0;
};

RunTimes train_once(const Options& o, const fs::path& dir, const std::string& name,
                    const std::vector<std::string>& extra) {
  const auto metrics = dir / (name + ".jsonl");
  fs::remove(metrics);
  LaunchOptions launch;
  launch.nproc = 1;
  launch.quiet = true;
  launch.command = {"conveyor",
                    "train",
                    "--stages",
                    "1",
                    "--layers",
                    std::to_string(o.layers),
                    "--dim",
                    std::to_string(o.dim),
                    "--heads",
                    std::to_string(o.heads),
                    "--seq",
                    std::to_string(o.seq),
                    "--microbatches",
                    std::to_string(o.microbatches),
                    "--micro-batch-size",
                    std::to_string(o.micro_batch_size),
                    "--steps",
                    std::to_string(o.steps),
                    "--threads",
                    std::to_string(o.threads),
                    "--print-every",
                    "0",
                    "--resume",
                    "none",
                    "--keep",
                    "2",
                    "--ckpt-dir",
                    (dir / name).string(),
                    "--metrics",
                    metrics.string()};
  launch.command.insert(launch.command.end(), extra.begin(), extra.end());
  auto done = std::async(std::launch::async, [&launch] { return run_supervisor(launch); });
  std::vector<double> arrival;  // seconds, one per metrics line
  std::vector<double> step_ms;
  std::string pending;
  std::ifstream in;
  const auto t0 = std::chrono::steady_clock::now();
  for (bool finished = false; !finished;) {
    finished = done.wait_for(std::chrono::microseconds(500)) == std::future_status::ready;
    const double now = seconds_since(t0);
    if (!in.is_open()) in.open(metrics);
    if (!in.is_open()) continue;
    in.clear();
    std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    pending += chunk;
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      step_ms.push_back(nlohmann::json::parse(pending.substr(0, nl))["step_ms"]);
      arrival.push_back(now);
      pending.erase(0, nl + 1);
    }
  }
  const int code = done.get();
  CONVEYOR_CHECK(code == 0, "bench checkpoint: the {} training run failed (exit {})", name, code);
  CONVEYOR_CHECK(arrival.size() == size_t(o.steps),
                 "bench checkpoint: {} run wrote {} of {} "
                 "metrics lines",
                 name, arrival.size(), o.steps);
  fs::remove_all(dir / name);
  fs::remove(metrics);
  return {arrival[o.steps - 2] - arrival[o.save_every - 1], median(step_ms)};
}

nlohmann::ordered_json bench_stall(const Options& o, const fs::path& dir) {
  CONVEYOR_REQUIRE(o.save_every >= 1 && o.steps >= 2 * o.save_every + 2,
                   "bench checkpoint: --steps must be at least 2 * --save-every + 2");
  const std::string every = std::to_string(o.save_every);
  // Saves inside the measured window: after steps K, 2K, ... up to steps - 2.
  const int saves = (o.steps - 2) / o.save_every;
  std::vector<double> base_s, sync_s, async_s, step_ms;
  // Interleaved repeats, so a change in machine load hits every mode alike.
  for (int r = 0; r < o.repeats; ++r) {
    const auto base = train_once(o, dir, "base", {});
    base_s.push_back(base.window_s);
    step_ms.push_back(base.step_ms);
    sync_s.push_back(train_once(o, dir, "sync", {"--save-every", every}).window_s);
    async_s.push_back(
        train_once(o, dir, "async", {"--save-every", every, "--async-save"}).window_s);
  }
  const double sync_ms = (median(sync_s) - median(base_s)) / saves * 1e3;
  const double async_ms = (median(async_s) - median(base_s)) / saves * 1e3;
  auto r1 = [](double v) { return std::round(v * 10) / 10; };
  return {{"bench", "checkpoint_stall"},
          {"steps", o.steps},
          {"save_every", o.save_every},
          {"saves_measured", saves},
          {"repeats", o.repeats},
          {"step_ms", r1(median(step_ms))},
          {"window_ms_base", r1(median(base_s) * 1e3)},
          {"window_ms_sync", r1(median(sync_s) * 1e3)},
          {"window_ms_async", r1(median(async_s) * 1e3)},
          {"sync_save_ms", r1(sync_ms)},
          {"async_stall_ms", r1(async_ms)},
          {"stall_ratio", std::round(async_ms / sync_ms * 1000) / 1000}};
}

int run_bench_checkpoint(const Options& o) {
  CONVEYOR_REQUIRE(o.mib >= 1 && o.tensors >= 1 && o.repeats >= 1,
                   "bench checkpoint: --mib, --tensors and --repeats must be at least 1");
  log::init();
  fs::path dir = o.dir;
  const bool own_dir = dir.empty();
  if (own_dir) dir = fs::temp_directory_path() / fmt::format("conveyor-bench-ckpt-{}", getpid());
  fs::create_directories(dir);
  try {
    std::printf("%s\n", bench_write(o, dir).dump().c_str());
    std::fflush(stdout);
    if (o.stall) std::printf("%s\n", bench_stall(o, dir).dump().c_str());
  } catch (...) {
    if (own_dir) fs::remove_all(dir);
    throw;
  }
  if (own_dir) fs::remove_all(dir);
  return kExitOk;
}

}  // namespace

void add_bench_checkpoint(CLI::App& bench, BenchRunner& run) {
  auto o = std::make_shared<Options>();
  auto* s = bench.add_subcommand(
      "checkpoint", "checkpoint save MB/s next to dd conv=fsync, and the async save stall");
  s->add_option("--mib", o->mib, "shard size: params + Adam moments, MiB")->capture_default_str();
  s->add_option("--tensors", o->tensors, "tensors per group")->capture_default_str();
  s->add_option("--repeats", o->repeats, "timed saves, and training runs per mode (medians)")
      ->capture_default_str();
  s->add_option("--dir", o->dir, "where to write (default: a fresh folder in $TMPDIR)");
  s->add_flag("!--no-stall", o->stall, "skip the training-stall measurement");
  s->add_option("--layers", o->layers, "stall runs: model")->capture_default_str();
  s->add_option("--dim", o->dim)->capture_default_str();
  s->add_option("--heads", o->heads)->capture_default_str();
  s->add_option("--seq", o->seq)->capture_default_str();
  s->add_option("--microbatches", o->microbatches)->capture_default_str();
  s->add_option("--micro-batch-size", o->micro_batch_size)->capture_default_str();
  s->add_option("--steps", o->steps, "stall runs: steps")->capture_default_str();
  s->add_option("--save-every", o->save_every, "stall runs: save period")->capture_default_str();
  s->add_option("--threads", o->threads, "stall runs: OpenBLAS threads")->capture_default_str();
  s->callback([&run, o] { run = [o] { return run_bench_checkpoint(*o); }; });
}

}  // namespace conveyor::cli
