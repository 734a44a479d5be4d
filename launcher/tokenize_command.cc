// `conveyor tokenize --data TEXT --out DIR [--vocab-size N | --model FILE] [--val-every K]`:
// turns text into llm.c token shards (data/token_file.h) that `conveyor train --data DIR`
// reads, split into DIR/tokens_train_000000.bin and DIR/tokens_val_000000.bin (every K-th
// line goes to validation). Without --model it first trains a BPE vocabulary of N pieces on
// the text with SentencePiece, as DIR/tokenizer/bpe.model; `train --tokenizer` then prints
// samples as text.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/log.h"
#include "data/dataset.h"
#include "data/token_file.h"
#include "data/tokenizer.h"
#include "launcher/commands.h"

namespace conveyor::cli {

namespace {

namespace fs = std::filesystem;

// Token ids are stored as uint16 in llm.c's shards.
constexpr int kMaxShardVocab = 65536;

struct TokenizeOptions {
  std::string data = data::kDefaultCorpus;
  std::string out;
  std::string model;
  int vocab_size = 4096;
  int val_every = 20;
};

int run_tokenize(const TokenizeOptions& o) {
  log::init();
  const auto inputs = data::Dataset::input_files(o.data);
  for (const auto& p : inputs)
    CONVEYOR_REQUIRE(p.extension() != ".bin",
                     "--data {}: {} is already a token file; tokenize "
                     "reads text",
                     o.data, p.string());
  std::error_code ec;
  fs::create_directories(o.out, ec);
  CONVEYOR_REQUIRE(!ec, "--out {} cannot be created: {}", o.out, ec.message());
  std::string model = o.model;
  if (model.empty()) {
    CONVEYOR_REQUIRE(o.vocab_size >= 260 && o.vocab_size <= kMaxShardVocab,
                     "--vocab-size {} is outside 260..{} (256 byte pieces plus a few; token "
                     "shards hold 16-bit ids)",
                     o.vocab_size, kMaxShardVocab);
    std::fprintf(stderr, "tokenize: training a %d-piece BPE vocabulary on %zu file(s)...\n",
                 o.vocab_size, inputs.size());
    // In a sub-folder: the shards' folder holds token files only (a data folder is read
    // whole, not recursively).
    const auto dir = fs::path(o.out) / "tokenizer";
    fs::create_directories(dir, ec);
    CONVEYOR_REQUIRE(!ec, "{} cannot be created: {}", dir.string(), ec.message());
    data::train_bpe(inputs, o.vocab_size, dir / "bpe");
    model = (dir / "bpe.model").string();
  }
  const auto tokenizer = data::Tokenizer::load(model);
  CONVEYOR_REQUIRE(tokenizer.can_encode(), "--model {} cannot encode ({})", model,
                   tokenizer.description());
  CONVEYOR_REQUIRE(tokenizer.vocab_size() <= kMaxShardVocab,
                   "--model {} has {} pieces; token shards hold 16-bit ids (at most {})", model,
                   tokenizer.vocab_size(), kMaxShardVocab);
  CONVEYOR_REQUIRE(o.val_every >= 2, "--val-every {} must be at least 2", o.val_every);

  std::vector<uint16_t> train, val;
  size_t lines = 0, bytes = 0, unknown = 0;
  for (const auto& path : inputs) {
    std::ifstream in(path, std::ios::binary);
    for (std::string line; std::getline(in, line); ++lines) {
      line += '\n';
      bytes += line.size();
      size_t unk = 0;
      auto& into = lines % size_t(o.val_every) == size_t(o.val_every) - 1 ? val : train;
      for (int32_t id : tokenizer.encode(line, &unk)) into.push_back(static_cast<uint16_t>(id));
      unknown += unk;
    }
  }
  CONVEYOR_REQUIRE(!train.empty() && !val.empty(),
                   "--data {} gives {} training and {} validation tokens; it needs more text "
                   "(or a smaller --val-every)",
                   o.data, train.size(), val.size());
  if (unknown > 0)
    CONVEYOR_LOG_WARN("{} piece(s) of the text are outside the vocabulary of {} and became <unk>",
                      unknown, model);
  const auto train_file = (fs::path(o.out) / "tokens_train_000000.bin").string();
  const auto val_file = (fs::path(o.out) / "tokens_val_000000.bin").string();
  data::write_token_file(train_file, train);
  data::write_token_file(val_file, val);
  std::printf(
      "tokenize: %zu lines, %zu bytes -> %zu training tokens (%s), %zu validation tokens "
      "(%s); %.2f bytes per token with %s\n"
      "train on them with: conveyor train --data %s --val-data %s --vocab %d "
      "--tokenizer %s\n",
      lines, bytes, train.size(), train_file.c_str(), val.size(), val_file.c_str(),
      double(bytes) / double(train.size() + val.size()), tokenizer.description().c_str(),
      o.out.c_str(), o.out.c_str(), tokenizer.vocab_size(), model.c_str());
  return kExitOk;
}

}  // namespace

void add_tokenize(CLI::App& app, Runner& run) {
  auto o = std::make_shared<TokenizeOptions>();
  auto* sub = app.add_subcommand(
      "tokenize", "text -> token shards for train (training a BPE vocabulary unless --model)");
  sub->add_option("--data", o->data, "text file or folder of text files")->capture_default_str();
  sub->add_option("--out", o->out, "folder for the shards (and tokenizer/bpe.model)")->required();
  sub->add_option("--vocab-size", o->vocab_size, "pieces of the BPE vocabulary to train")
      ->capture_default_str();
  sub->add_option("--model", o->model, "an existing SentencePiece model to apply instead");
  sub->add_option("--val-every", o->val_every, "every K-th line goes to the validation shard")
      ->capture_default_str();
  sub->callback([&run, o] { run = [o] { return run_tokenize(*o); }; });
}

}  // namespace conveyor::cli
