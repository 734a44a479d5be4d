// `conveyor tokenize --data TEXT --out DIR [--vocab-size N | --model FILE] [--val-every K]`:
// turns text into llm.c token shards (data/token_file.h) that `conveyor train --data DIR`
// reads, split into DIR/tokens_train_000000.bin and DIR/tokens_val_000000.bin (every K-th
// line goes to validation). Without --model it first trains a BPE vocabulary of N pieces on
// the text with SentencePiece, as DIR/tokenizer/bpe.model; `train --tokenizer` then prints
// samples as text. Every option is checked before any work; every file is written whole under
// a temporary name and renamed into place, so a job training on DIR keeps reading the old
// files it has mapped.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <optional>

#include "common/error.h"
#include "common/log.h"
#include "common/printable.h"
#include "data/dataset.h"
#include "data/text_lines.h"
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

// A folder tokenize writes into: absent (it is created) or a folder.
void require_folder_or_absent(const fs::path& path, const char* what) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  CONVEYOR_REQUIRE(!fs::exists(st) || fs::is_directory(st),
                   "{} {} exists and is not a folder; tokenize writes the token shards into a "
                   "folder",
                   what, printable(path.string(), 512));
}

int run_tokenize(const TokenizeOptions& o) {
  log::init();
  // Every option first: a mistake costs nothing and leaves nothing behind.
  CONVEYOR_REQUIRE(o.val_every >= 2, "--val-every {} must be at least 2", o.val_every);
  if (o.model.empty()) {
    CONVEYOR_REQUIRE(o.vocab_size >= 260 && o.vocab_size <= kMaxShardVocab,
                     "--vocab-size {} is outside 260..{} (256 byte pieces plus a few; token "
                     "shards hold 16-bit ids)",
                     o.vocab_size, kMaxShardVocab);
  }
  const auto inputs = data::Dataset::input_files(o.data);
  for (const auto& p : inputs)
    CONVEYOR_REQUIRE(p.extension() != ".bin",
                     "--data {}: {} is already a token file; tokenize "
                     "reads text",
                     printable(o.data, 512), printable(p.string(), 512));
  const fs::path out(o.out);
  const fs::path model_dir = out / "tokenizer";  // the shards' folder holds token files only
  require_folder_or_absent(out, "--out");
  require_folder_or_absent(model_dir, "--out's tokenizer folder");
  std::optional<data::Tokenizer> given;
  if (!o.model.empty()) {
    given = data::Tokenizer::load(o.model);
    CONVEYOR_REQUIRE(given->can_encode(), "--model {} cannot encode ({})", printable(o.model, 512),
                     given->description());
    CONVEYOR_REQUIRE(given->vocab_size() <= kMaxShardVocab,
                     "--model {} has {} pieces; token shards hold 16-bit ids (at most {})",
                     printable(o.model, 512), given->vocab_size(), kMaxShardVocab);
  }

  // The work: everything in memory until the end, then each file written whole under a
  // temporary name and renamed into place (a job training on the folder keeps its mapping of
  // the old files).
  std::string trained;  // the new model's bytes, when one is trained
  const fs::path model_prefix = model_dir / "bpe";
  std::string model = o.model;
  if (!given) {
    std::fprintf(stderr, "tokenize: training a %d-piece BPE vocabulary on %zu file(s)...\n",
                 o.vocab_size, inputs.size());
    trained = data::train_bpe_model(inputs, o.vocab_size);
    model = (model_dir / "bpe.model").string();
    given = data::Tokenizer::from_model(trained, model);
  }
  const data::Tokenizer& tokenizer = *given;

  std::vector<uint16_t> train, val;
  size_t lines = 0, bytes = 0, unknown = 0;
  data::TextLines text(inputs);
  for (std::string line; text.next(line); ++lines) {
    line += '\n';
    bytes += line.size();
    size_t unk = 0;
    auto& into = lines % size_t(o.val_every) == size_t(o.val_every) - 1 ? val : train;
    for (int32_t id : tokenizer.encode(line, &unk)) into.push_back(static_cast<uint16_t>(id));
    unknown += unk;
  }
  CONVEYOR_REQUIRE(!train.empty() && !val.empty(),
                   "--data {} gives {} training and {} validation tokens; it needs more text "
                   "(or a smaller --val-every)",
                   printable(o.data, 512), train.size(), val.size());
  if (unknown > 0)
    CONVEYOR_LOG_WARN("{} piece(s) of the text are outside the vocabulary of {} and became <unk>",
                      unknown, printable(model, 512));
  std::error_code ec;
  fs::create_directories(trained.empty() ? out : model_dir, ec);
  CONVEYOR_REQUIRE(!ec, "--out {} cannot be created: {}", printable(o.out, 512), ec.message());
  const auto train_file = (out / "tokens_train_000000.bin").string();
  const auto val_file = (out / "tokens_val_000000.bin").string();
  data::write_token_file(train_file, train);
  data::write_token_file(val_file, val);
  if (!trained.empty()) data::write_model_files(trained, model_prefix);
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
