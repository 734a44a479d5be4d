// `conveyor tokenize` then `conveyor train` on the shards with --tokenizer: text in, llm.c
// token shards split into train and val, a model trained on them, and samples as text.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>

#include "data/mapped_file.h"

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

namespace {

std::string corpus_text(int lines, const std::string& word) {
  std::string text;
  for (int i = 0; i < lines; ++i)
    text += "the " + word + " goes forward and the gradient back, step " + std::to_string(i % 13) +
            "\n";
  return text;
}

// The piece count a tokenize run reports ("... with SentencePiece model PATH (N pieces)").
std::string pieces_reported(const std::string& output) {
  const auto end = output.find(" pieces)");
  if (end == std::string::npos) return "";
  const auto begin = output.rfind('(', end);
  return output.substr(begin + 1, end - begin - 1);
}

}  // namespace

TEST_CASE("tokenize never parses a file name as a SentencePiece flag",
          "[cli][interop][hardening]") {
  TempDir dir;
  // A folder whose path holds a space and a comma, with a file whose name is a trainer flag.
  const auto data = dir / "my corpus, v2";
  std::filesystem::create_directories(data);
  write_file(data / "a.txt", corpus_text(200, "activation"));
  write_file(data / "b --vocab_size=400 --model_type=char", corpus_text(100, "stage"));
  const auto out = dir / "tokens";
  auto r = run_conveyor({"tokenize", "--data", data.string(), "--out", out.string(), "--vocab-size",
                         "300", "--val-every", "10"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(pieces_reported(r.output) == "300");
  CHECK(std::filesystem::exists(out / "tokenizer" / "bpe.model"));
  CHECK(std::filesystem::exists(out / "tokenizer" / "bpe.vocab"));
}

TEST_CASE("tokenize checks every option before any work and leaves nothing behind",
          "[cli][hardening]") {
  TempDir dir;
  write_file(dir / "corpus.txt", corpus_text(200, "activation"));
  const auto out = dir / "tokens";
  auto r = run_conveyor({"tokenize", "--data", (dir / "corpus.txt").string(), "--out", out.string(),
                         "--vocab-size", "300", "--val-every", "1"});
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("--val-every 1"));
  CHECK_THAT(r.output, !Catch::Contains("training a"));
  CHECK_FALSE(std::filesystem::exists(out));
  // --out naming a file, and a --model that is no tokenizer, are refused before training too.
  write_file(dir / "file", "x");
  auto onto_file = run_conveyor({"tokenize", "--data", (dir / "corpus.txt").string(), "--out",
                                 (dir / "file").string(), "--vocab-size", "300"});
  CHECK(onto_file.exit_code == 2);
  CHECK_THAT(onto_file.output, Catch::Contains("--out") && !Catch::Contains("training a"));
  auto bad_model = run_conveyor({"tokenize", "--data", (dir / "corpus.txt").string(), "--out",
                                 out.string(), "--model", (dir / "file").string()});
  CHECK(bad_model.exit_code == 2);
  CHECK_FALSE(std::filesystem::exists(out));
}

TEST_CASE("re-running tokenize leaves a mapping of the old shards readable and intact",
          "[cli][hardening]") {
  TempDir dir;
  write_file(dir / "corpus.txt", corpus_text(300, "activation"));
  const auto out = dir / "tokens";
  auto tokenize = [&] {
    auto r = run_conveyor({"tokenize", "--data", (dir / "corpus.txt").string(), "--out",
                           out.string(), "--vocab-size", "300", "--val-every", "10"});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  };
  tokenize();
  const auto shard = out / "tokens_train_000000.bin";
  const std::string old_bytes = read_file(shard);
  const std::string old_model = read_file(out / "tokenizer" / "bpe.model");
  conveyor::data::MappedFile mapped(shard);  // as a training job's Dataset maps it
  conveyor::data::MappedFile mapped_model(out / "tokenizer" / "bpe.model");
  write_file(dir / "corpus.txt", corpus_text(60, "activation"));  // a shorter shard
  tokenize();
  REQUIRE(read_file(shard).size() < old_bytes.size());
  REQUIRE(mapped.size() == old_bytes.size());
  CHECK(std::memcmp(mapped.data(), old_bytes.data(), old_bytes.size()) == 0);
  CHECK(std::memcmp(mapped_model.data(), old_model.data(), old_model.size()) == 0);
  // Only the shards and the tokenizer folder: no temporary file left.
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(out)) ++entries;
  CHECK(entries == 3);
}
