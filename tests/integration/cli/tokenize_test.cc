// `conveyor tokenize` then `conveyor train` on the shards with --tokenizer: text in, llm.c
// token shards split into train and val, a model trained on them, and samples as text.
#include <catch2/catch.hpp>

#include <filesystem>

#include "tests/test_util.h"

using namespace conveyor::test;

TEST_CASE("tokenize then train prints samples as text", "[cli][interop]") {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += "the stage sends activations forward and gradients back, step " +
            std::to_string(i % 17) + "\n";
  write_file(dir / "corpus.txt", text);
  const auto out = dir / "tokens";
  auto tok = run_conveyor({"tokenize", "--data", (dir / "corpus.txt").string(), "--out",
                           out.string(), "--vocab-size", "300", "--val-every", "10"});
  INFO(tok.output);
  REQUIRE(tok.exit_code == 0);
  CHECK(std::filesystem::exists(out / "tokens_train_000000.bin"));
  CHECK(std::filesystem::exists(out / "tokens_val_000000.bin"));
  const auto model = (out / "tokenizer" / "bpe.model").string();
  CHECK(std::filesystem::exists(model));
  CHECK(tok.output.find("training tokens") != std::string::npos);

  auto train = [&](const std::vector<std::string>& flags) {
    return run_conveyor(with(
        with({"train"}, tiny_model_args({.layers = 2, .microbatches = 2, .micro_batch_size = 2})),
        with({"--data", out.string()}, flags)));
  };
  auto r = train({"--val-data", out.string(), "--print-every", "5", "--vocab", "300", "--tokenizer",
                  model, "--steps", "5", "--sample", "30"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("--- sample (30 tokens) ---") != std::string::npos);
  CHECK(r.output.find("val loss") != std::string::npos);

  // The tokenizer must cover the model's ids, and must be a tokenizer.
  auto small = train({"--vocab", "256", "--tokenizer", model, "--steps", "1"});
  CHECK(small.exit_code == 2);
  CHECK(small.output.find("has 300 tokens but --vocab is 256; use --vocab 300") !=
        std::string::npos);
  write_file(dir / "junk.model", "not a tokenizer");
  auto junk =
      train({"--vocab", "300", "--tokenizer", (dir / "junk.model").string(), "--steps", "1"});
  CHECK(junk.exit_code == 2);
  CHECK(junk.output.find("is neither a SentencePiece model") != std::string::npos);
  auto bad_vocab = run_conveyor({"tokenize", "--data", (dir / "corpus.txt").string(), "--out",
                                 (dir / "t2").string(), "--vocab-size", "100"});
  CHECK(bad_vocab.exit_code == 2);
  CHECK(bad_vocab.output.find("--vocab-size 100 is outside") != std::string::npos);
}
