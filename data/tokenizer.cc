#include "data/tokenizer.h"

#include <fmt/format.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <thread>
#include <unordered_map>

#include "common/error.h"
#include "common/file_io.h"
#include "common/printable.h"
#include "data/text_lines.h"

namespace conveyor::data {

namespace {

// llm.c's gpt2_tokenizer.bin: the pieces, by id.
std::vector<std::string> llmc_pieces(const std::filesystem::path& path, const std::string& bytes) {
  auto bad = [&](const std::string& what) {
    throw Error(ErrorKind::kUsage,
                fmt::format("{} is not a valid llm.c tokenizer file: {}", path.string(), what));
  };
  if (bytes.size() < 1024) bad("shorter than its 1024-byte header");
  uint32_t header[256];
  std::memcpy(header, bytes.data(), sizeof header);
  if (header[1] != 1 && header[1] != 2) bad(fmt::format("version {} (1 or 2 are read)", header[1]));
  const uint32_t n = header[2];
  if (n == 0 || n > (1u << 20)) bad(fmt::format("vocabulary size {}", n));
  std::vector<std::string> pieces;
  pieces.reserve(n);
  size_t at = 1024;
  for (uint32_t i = 0; i < n; ++i) {
    if (at >= bytes.size()) bad(fmt::format("it ends at token {} of {}", i, n));
    const size_t len = static_cast<unsigned char>(bytes[at++]);
    if (at + len > bytes.size()) bad(fmt::format("token {} runs past the end", i));
    pieces.push_back(bytes.substr(at, len));
    at += len;
  }
  return pieces;
}

}  // namespace

Tokenizer Tokenizer::load(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(ErrorKind::kUsage, fmt::format("--tokenizer {} is not a file", path.string()),
                "give a SentencePiece .model (conveyor tokenize writes one) or llm.c's "
                "gpt2_tokenizer.bin");
  const std::string bytes = read_input_file(path);
  Tokenizer t;
  uint32_t magic = 0;
  if (bytes.size() >= 4) std::memcpy(&magic, bytes.data(), 4);
  if (magic == kLlmcTokenizerMagic) {
    t.pieces_ = llmc_pieces(path, bytes);
    t.description_ = fmt::format("llm.c tokenizer {} ({} tokens, decoding only)", path.string(),
                                 t.pieces_.size());
    return t;
  }
  auto spm = std::make_shared<sentencepiece::SentencePieceProcessor>();
  const auto status = spm->LoadFromSerializedProto(bytes);
  if (!status.ok())
    throw Error(ErrorKind::kUsage,
                fmt::format("--tokenizer {} is neither a SentencePiece model nor llm.c's "
                            "tokenizer file ({})",
                            path.string(), status.ToString()),
                "give a SentencePiece .model (conveyor tokenize writes one) or llm.c's "
                "gpt2_tokenizer.bin");
  t.spm_ = std::move(spm);
  t.description_ =
      fmt::format("SentencePiece model {} ({} pieces)", path.string(), t.spm_->GetPieceSize());
  return t;
}

Tokenizer Tokenizer::from_model(const std::string& bytes, const std::string& name) {
  auto spm = std::make_shared<sentencepiece::SentencePieceProcessor>();
  const auto status = spm->LoadFromSerializedProto(bytes);
  if (!status.ok())
    throw Error(ErrorKind::kUsage, fmt::format("{} is not a SentencePiece model ({})",
                                               printable(name, 512), status.ToString()));
  Tokenizer t;
  t.spm_ = std::move(spm);
  t.description_ = fmt::format("SentencePiece model {} ({} pieces)", printable(name, 512),
                               t.spm_->GetPieceSize());
  return t;
}

std::string Tokenizer::vocab_text() const {
  std::string text;
  if (!spm_) return text;
  for (int id = 0; id < spm_->GetPieceSize(); ++id)
    text += fmt::format("{}\t{}\n", spm_->IdToPiece(id), spm_->GetScore(id));
  return text;
}

int Tokenizer::vocab_size() const {
  return spm_ ? spm_->GetPieceSize() : static_cast<int>(pieces_.size());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, size_t* unknown) const {
  CONVEYOR_REQUIRE(spm_ != nullptr, "{} can only decode; encode with a SentencePiece model",
                   description_);
  std::vector<int> ids;
  const auto status = spm_->Encode(text, &ids);
  CONVEYOR_CHECK(status.ok(), "SentencePiece could not encode the text: {}", status.ToString());
  if (unknown) {
    *unknown = 0;
    for (int id : ids) *unknown += spm_->IsUnknown(id);
  }
  return {ids.begin(), ids.end()};
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  if (spm_) {
    std::vector<int> known;
    std::string out;
    for (int32_t id : ids) {
      if (id >= 0 && id < spm_->GetPieceSize()) {
        known.push_back(id);
        continue;
      }
      out += spm_->DecodeIds(known) + fmt::format("<?{}>", id);
      known.clear();
    }
    return out + spm_->DecodeIds(known);
  }
  std::string out;
  for (int32_t id : ids)
    out += id >= 0 && size_t(id) < pieces_.size() ? pieces_[size_t(id)] : fmt::format("<?{}>", id);
  return out;
}

namespace {

// The training sentences: the files' lines, read here (TextLines), never named to
// SentencePiece. A read error ends the iteration; train_bpe_model rethrows it.
class LinesIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LinesIterator(const std::vector<std::filesystem::path>& inputs) : lines_(inputs) {
    Next();
  }
  bool done() const override { return done_; }
  void Next() override {
    if (done_) return;
    try {
      done_ = !lines_.next(value_);
    } catch (const Error&) {
      error_ = std::current_exception();
      done_ = true;
    }
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override {
    if (!error_) return {};
    return {sentencepiece::util::StatusCode::kInternal, "a --data file could not be read"};
  }
  std::exception_ptr error() const { return error_; }

 private:
  TextLines lines_;
  std::string value_;
  bool done_ = false;
  std::exception_ptr error_;
};

}  // namespace

std::string train_bpe_model(const std::vector<std::filesystem::path>& inputs, int vocab_size) {
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Key and value each: no value is split on spaces or parsed as a flag. No model_prefix:
  // the model comes back as bytes, and nothing is written here.
  const std::unordered_map<std::string, std::string> options = {
      {"vocab_size", std::to_string(vocab_size)},
      {"model_type", "bpe"},
      {"character_coverage", "1.0"},
      {"byte_fallback", "true"},
      {"split_digits", "true"},
      {"input_sentence_size", "2000000"},
      // Text as it is: newlines and runs of spaces survive a round trip (as byte pieces).
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", "16384"},
      {"num_threads", std::to_string(threads)},
      {"minloglevel", "2"},
  };
  LinesIterator lines(inputs);
  std::string model;
  // SentencePiece logs its options and progress to stderr; its errors come back in the
  // status. So stderr is muted while it trains.
  std::fflush(stderr);
  const int saved_stderr = ::dup(STDERR_FILENO);
  const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (saved_stderr >= 0 && devnull >= 0) ::dup2(devnull, STDERR_FILENO);
  const auto status = sentencepiece::SentencePieceTrainer::Train(options, &lines, &model);
  if (saved_stderr >= 0) {
    ::dup2(saved_stderr, STDERR_FILENO);
    ::close(saved_stderr);
  }
  if (devnull >= 0) ::close(devnull);
  if (lines.error()) std::rethrow_exception(lines.error());
  if (!status.ok())
    throw Error(ErrorKind::kUsage,
                fmt::format("SentencePiece could not train a {}-piece BPE vocabulary: {}",
                            vocab_size, status.ToString()),
                "choose another --vocab-size (the byte pieces, the text's characters and "
                "the merges must fit; SentencePiece says how many above)");
  return model;
}

void write_model_files(const std::string& model, const std::filesystem::path& model_prefix) {
  const auto tokenizer = Tokenizer::from_model(model, model_prefix.string() + ".model");
  std::filesystem::path file = model_prefix;
  file += ".model";
  write_file_atomic(file, model);
  file.replace_extension(".vocab");
  write_file_atomic(file, tokenizer.vocab_text());
}

void train_bpe(const std::vector<std::filesystem::path>& inputs, int vocab_size,
               const std::filesystem::path& model_prefix) {
  write_model_files(train_bpe_model(inputs, vocab_size), model_prefix);
}

}  // namespace conveyor::data
