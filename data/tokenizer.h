// Text <-> token ids, for `conveyor tokenize` and for printing `--sample` as text.
//
// Two kinds of tokenizer file:
//   - a SentencePiece model (.model), trained by `conveyor tokenize` (BPE with byte fallback,
//     so every text encodes) or by anyone else; encodes and decodes;
//   - llm.c's GPT-2 tokenizer file (gpt2_tokenizer.bin: 256 x uint32 header, magic
//     20240328, version 1 or 2, vocab size, then each token as a length byte and its
//     bytes); decodes only, for samples of models trained on llm.c's GPT-2 token shards.
// Thread safety: const methods may be called from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace conveyor::data {

inline constexpr uint32_t kLlmcTokenizerMagic = 20240328;

class Tokenizer {
 public:
  // Throws Error(kUsage) naming the file when it is missing or neither kind.
  static Tokenizer load(const std::filesystem::path& path);
  // A SentencePiece model from its bytes (train_bpe's); `name` says where it will be written.
  // Throws Error(kUsage) when the bytes are not a model.
  static Tokenizer from_model(const std::string& bytes, const std::string& name);

  int vocab_size() const;
  bool can_encode() const { return spm_ != nullptr; }
  // `unknown` (optional) receives how many pieces had no id of their own (became <unk>).
  // Throws Error(kUsage) when this tokenizer cannot encode (llm.c's file).
  std::vector<int32_t> encode(std::string_view text, size_t* unknown = nullptr) const;
  // Ids outside the vocabulary are written as <?N>.
  std::string decode(const std::vector<int32_t>& ids) const;
  const std::string& description() const { return description_; }
  // SentencePiece's .vocab text of this model: each piece and its score, one a line.
  // Empty for llm.c's file.
  std::string vocab_text() const;

 private:
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> spm_;
  std::vector<std::string> pieces_;  // llm.c's file
  std::string description_;
};

// Trains a BPE tokenizer of `vocab_size` pieces on the lines of the text files `inputs` and
// returns the SentencePiece model's bytes (nothing is written). Byte fallback is on, so any
// text encodes. The files reach SentencePiece as lines through an iterator and every option
// as a key and value: no file name is ever parsed as a trainer flag. Blocking. Throws
// Error(kUsage) for a vocabulary SentencePiece refuses (too small, larger than the text
// supports), naming it, or a file that cannot be read.
std::string train_bpe_model(const std::vector<std::filesystem::path>& inputs, int vocab_size);

// Writes `model` (train_bpe_model's bytes) as `model_prefix`.model and its .vocab, each
// replaced atomically (common/file_io.h: a temporary name, fsync, rename), so a job that has
// the old model open keeps reading it.
void write_model_files(const std::string& model, const std::filesystem::path& model_prefix);

// train_bpe_model, then write_model_files.
void train_bpe(const std::vector<std::filesystem::path>& inputs, int vocab_size,
               const std::filesystem::path& model_prefix);

}  // namespace conveyor::data
