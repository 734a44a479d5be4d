#include "data/tokenizer.h"

#include <fmt/format.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include "common/error.h"
#include "common/file_io.h"

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

void train_bpe(const std::vector<std::filesystem::path>& inputs, int vocab_size,
               const std::filesystem::path& model_prefix) {
  std::string files;
  for (const auto& p : inputs) {
    if (!files.empty()) files += ',';
    files += p.string();
  }
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::string args = fmt::format(
      "--input={} --model_prefix={} --vocab_size={} --model_type=bpe --character_coverage=1.0 "
      "--byte_fallback=true --split_digits=true --input_sentence_size=2000000 "
      // Text as it is: newlines and runs of spaces survive a round trip (as byte pieces).
      "--normalization_rule_name=identity --remove_extra_whitespaces=false "
      "--add_dummy_prefix=false "
      "--shuffle_input_sentence=true --max_sentence_length=16384 --num_threads={} "
      "--minloglevel=2",
      files, model_prefix.string(), vocab_size, threads);
  // SentencePiece logs its whole command line (every input file) before it applies
  // --minloglevel; its errors come back in the status. So stderr is muted while it trains.
  std::fflush(stderr);
  const int saved_stderr = ::dup(STDERR_FILENO);
  const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (saved_stderr >= 0 && devnull >= 0) ::dup2(devnull, STDERR_FILENO);
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  if (saved_stderr >= 0) {
    ::dup2(saved_stderr, STDERR_FILENO);
    ::close(saved_stderr);
  }
  if (devnull >= 0) ::close(devnull);
  if (!status.ok())
    throw Error(ErrorKind::kUsage,
                fmt::format("SentencePiece could not train a {}-piece BPE vocabulary: {}",
                            vocab_size, status.ToString()),
                "choose another --vocab-size (the byte pieces, the text's characters and "
                "the merges must fit; SentencePiece says how many above)");
}

}  // namespace conveyor::data
