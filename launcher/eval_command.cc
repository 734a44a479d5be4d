// `conveyor eval --ckpt DIR --data FILE [--max-windows K]`
#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "infer/evaluate.h"
#include "launcher/commands.h"

namespace conveyor::cli {

void add_eval(CLI::App& app, Runner& run) {
  struct Options {
    std::string ckpt, data;
    int64_t max_windows = 0;
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("eval", "mean cross-entropy of a checkpoint on a file");
  sub->add_option("--ckpt", o->ckpt,
                  "weights: a checkpoint (step directory, or --ckpt-dir with LATEST), a Hugging "
                  "Face GPT-2 folder or an llm.c file")
      ->required();
  sub->add_option("--data", o->data, "text file (or .bin token file) to score")->required();
  sub->add_option("--max-windows", o->max_windows,
                  "score only the first K windows of T tokens (0: all)")
      ->capture_default_str();
  sub->callback([&run, o] {
    run = [o] {
      log::init();
      auto r = pipeline::evaluate(o->ckpt, o->data, o->max_windows);
      nlohmann::ordered_json j = {{"loss", r.loss}, {"windows", r.windows}, {"tokens", r.tokens}};
      std::printf("%s\n", j.dump().c_str());
      return 0;
    };
  });
}

}  // namespace conveyor::cli
