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

  int vocab_size() const;
  bool can_encode() const { return spm_ != nullptr; }
  // `unknown` (optional) receives how many pieces had no id of their own (became <unk>).
  // Throws Error(kUsage) when this tokenizer cannot encode (llm.c's file).
  std::vector<int32_t> encode(std::string_view text, size_t* unknown = nullptr) const;
  // Ids outside the vocabulary are written as <?N>.
  std::string decode(const std::vector<int32_t>& ids) const;
  const std::string& description() const { return description_; }

 private:
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> spm_;
  std::vector<std::string> pieces_;  // llm.c's file
  std::string description_;
};

// Trains a BPE tokenizer of `vocab_size` pieces on the text files `inputs` and writes
// `model_prefix`.model and .vocab. Byte fallback is on, so any text encodes. Blocking.
// Throws Error(kUsage) for a vocabulary SentencePiece refuses (too small, larger than the
// text supports), naming it.
void train_bpe(const std::vector<std::filesystem::path>& inputs, int vocab_size,
               const std::filesystem::path& model_prefix);

}  // namespace conveyor::data
