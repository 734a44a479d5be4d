// `--trace` on 4 stages: a Chrome trace with one track per stage, every action of every
// micro-batch, the waits for transfers, a track per stage with the transfers themselves (from
// posted to completed), and a timeline that is consistent across processes.
#include <catch2/catch.hpp>

#include <map>
#include <nlohmann/json.hpp>

#include "tests/integration/pipeline/pipeline_test_util.h"

using namespace conveyor::test;

namespace {

struct Event {
  std::string name, cat;
  double ts, end;
};

}  // namespace

TEST_CASE(
    "a 4-stage --trace has one track per stage with every action and transfer, and one "
    "with the transfers' own spans",
    "[pipeline]") {
  constexpr int p = 4, m = 4;
  TempDir dir;
  const auto path = (dir / "trace.json").string();
  // One step, so every (stage, micro-batch, action) appears exactly once; zb-h1 splits the
  // backward into B and W actions, 1f1b runs BW as B then W and traces both parts.
  for (const std::string schedule : {"zb-h1", "1f1b"}) {
    auto args = tiny_model_args({.layers = 4, .microbatches = m, .micro_batch_size = 1});
    args.insert(args.end(), {"--steps", "1", "--schedule", schedule, "--trace", path});
    auto r = train_on(p, args);
    INFO(schedule << "\n" << r.output);
    REQUIRE(r.exit_code == 0);
    const auto doc = nlohmann::json::parse(read_file(path));
    REQUIRE(doc.contains("traceEvents"));

    std::map<int, std::string> track_names;
    std::map<int, std::map<std::string, Event>> by_stage;  // stage -> name -> event
    std::map<int, std::vector<Event>> compute;
    for (const auto& e : doc["traceEvents"]) {
      const int tid = e.at("tid").get<int>();
      if (e.at("ph") == "M") {
        track_names[tid] = e.at("args").at("name").get<std::string>();
        continue;
      }
      REQUIRE(e.at("ph") == "X");
      Event ev{e.at("name"), e.at("cat"), e.at("ts").get<double>(), 0};
      ev.end = ev.ts + e.at("dur").get<double>();
      REQUIRE(ev.end >= ev.ts);
      CHECK(by_stage[tid].count(ev.name) == 0);  // each action or transfer once per step
      by_stage[tid][ev.name] = ev;
      if (ev.cat == "compute") compute[tid].push_back(ev);
    }
    REQUIRE(track_names.size() == 2 * p);
    REQUIRE(by_stage.size() == 2 * p);
    // The transfer tracks (below the all-reduce's rows, which this job has none of): every
    // message once, from its post to its completion, consistent with the compute tracks.
    auto transfers = [&](int s) -> std::map<std::string, Event>& { return by_stage[2 * p + s]; };
    for (int s = 0; s < p; ++s) {
      CHECK(track_names[2 * p + s] == "stage " + std::to_string(s) + " transfers");
      CHECK(transfers(s).size() == size_t((s > 0 ? 2 * m : 0) + (s < p - 1 ? 2 * m : 0)));
      auto& mine = by_stage[s];
      for (int mb = 0; mb < m; ++mb) {
        const auto n = std::to_string(mb);
        INFO("stage " << s << " micro-batch " << n);
        if (s < p - 1) {
          const std::string to = " to rank " + std::to_string(s + 1);
          const Event& act = transfers(s).at("send act" + n + to);
          CHECK(act.cat == "transfer");
          CHECK(act.ts >= mine["F" + n].end - 0.5);  // posted once its data is final
          // The next stage's receive completes after this send was posted, before its F.
          const Event& in = transfers(s + 1).at("recv act" + n + " from rank " + std::to_string(s));
          CHECK(in.end >= act.ts - 0.5);
          CHECK(in.end <= by_stage[s + 1]["F" + n].ts + 0.5);
          const Event& grad =
              transfers(s).at("recv grad" + n + " from rank " + std::to_string(s + 1));
          CHECK(grad.end <= mine["B" + n].ts + 0.5);
        }
        if (s > 0) {
          const Event& grad =
              transfers(s).at("send grad" + n + " to rank " + std::to_string(s - 1));
          CHECK(grad.ts >= mine["B" + n].end - 0.5);
        }
      }
    }
    for (int s = 0; s < p; ++s) {
      CHECK(track_names[s] == "stage " + std::to_string(s));
      auto& mine = by_stage[s];
      // A slot reused while its last micro-batch's sends are in flight shows the wait.
      std::erase_if(mine, [](const auto& e) { return e.first.starts_with("wait sends"); });
      auto expect = [&](const std::string& name, const std::string& cat) {
        INFO("stage " << s << ": " << name);
        REQUIRE(mine.count(name) == 1);
        CHECK(mine[name].cat == cat);
      };
      for (int mb = 0; mb < m; ++mb) {
        const auto n = std::to_string(mb);
        expect("F" + n, "compute");
        expect("B" + n, "compute");
        expect("W" + n, "compute");
        if (s > 0) expect("recv act" + n, "recv"), expect("send grad" + n, "send");
        if (s < p - 1) expect("send act" + n, "send"), expect("recv grad" + n, "recv");
        // Causality across processes (one host clock): a forward starts after the previous
        // stage's forward of the same micro-batch ended; a backward after the next stage's.
        if (s > 0) CHECK(mine["F" + n].ts >= by_stage[s - 1]["F" + n].end);
        if (s < p - 1) CHECK(mine["B" + n].ts >= by_stage[s + 1]["B" + n].end);
        CHECK(mine["W" + n].ts >= mine["B" + n].end);
      }
      CHECK(mine.size() == size_t(3 * m + (s > 0 ? 2 * m : 0) + (s < p - 1 ? 2 * m : 0)));
      // One thread computes per stage: its compute spans never overlap. (Timestamps are
      // doubles in microseconds; ts + dur may round by a fraction of a microsecond.)
      auto spans = compute[s];
      std::sort(spans.begin(), spans.end(),
                [](const Event& a, const Event& b) { return a.ts < b.ts; });
      for (size_t i = 1; i < spans.size(); ++i) {
        INFO("stage " << s << ": " << spans[i - 1].name << " then " << spans[i].name);
        CHECK(spans[i].ts >= spans[i - 1].end - 0.5);
      }
    }
  }
}
