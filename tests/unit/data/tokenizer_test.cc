// Tokenizers (data/tokenizer.h): a BPE model trained here round-trips text exactly, llm.c's
// tokenizer file decodes, and bad files are refused naming them.
#include <sentencepiece_trainer.h>
#include <catch2/catch.hpp>

#include <cstring>

#include "common/error.h"
#include "data/tokenizer.h"
#include "tests/test_util.h"

using namespace conveyor;
using namespace conveyor::data;

namespace {

const std::string kText =
    "The pipeline sends activations forward and gradients back.\n"
    "  Two spaces, a tab\there, digits 12345 and an accent: caf\xc3\xa9.\n"
    "Each stage keeps its own weights; the last one holds the head.\n";

std::string corpus() {
  std::string s;
  for (int i = 0; i < 200; ++i) s += kText;
  return s;
}

}  // namespace

TEST_CASE("a trained BPE tokenizer round-trips text byte for byte", "[data]") {
  test::TempDir dir;
  test::write_file(dir / "text.txt", corpus());
  train_bpe({dir / "text.txt"}, 300, dir / "bpe");
  const auto t = Tokenizer::load(dir / "bpe.model");
  CHECK(t.can_encode());
  CHECK(t.vocab_size() == 300);
  size_t unknown = 99;
  const auto ids = t.encode(kText, &unknown);
  CHECK(unknown == 0);               // byte fallback: nothing is unknown
  CHECK(ids.size() < kText.size());  // merges happened
  for (int32_t id : ids) CHECK((id >= 0 && id < 300));
  CHECK(t.decode(ids) == kText);
  // Text it never saw, with characters it never saw, still round-trips (byte pieces).
  const std::string unseen = "\xe2\x82\xac 9 \xf0\x9f\x99\x82 zebra\n";
  CHECK(t.decode(t.encode(unseen)) == unseen);
  CHECK(t.decode({5, 100000}).find("<?100000>") != std::string::npos);
}

TEST_CASE("a model without byte fallback counts the pieces it cannot encode", "[data]") {
  test::TempDir dir;
  test::write_file(dir / "ascii.txt", std::string(2000, 'a') + "\n" + std::string(2000, 'b'));
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + (dir / "ascii.txt").string() + " --model_prefix=" + (dir / "m").string() +
      " --vocab_size=8 --model_type=bpe --character_coverage=1.0 --minloglevel=2");
  REQUIRE(status.ok());
  const auto t = Tokenizer::load(dir / "m.model");
  size_t unknown = 0;
  t.encode("aaa xyz bbb", &unknown);
  CHECK(unknown > 0);
}

TEST_CASE("llm.c's tokenizer file decodes", "[data]") {
  test::TempDir dir;
  uint32_t header[256] = {};
  header[0] = kLlmcTokenizerMagic;
  header[1] = 2;
  header[2] = 3;  // tokens
  header[3] = 2;  // end of text
  std::string file(reinterpret_cast<const char*>(header), sizeof header);
  for (const std::string piece : {"a", "bc", "\n"}) file += char(piece.size()) + piece;
  test::write_file(dir / "gpt2_tokenizer.bin", file);
  const auto t = Tokenizer::load(dir / "gpt2_tokenizer.bin");
  CHECK_FALSE(t.can_encode());
  CHECK(t.vocab_size() == 3);
  CHECK(t.decode({1, 0, 2}) == "bca\n");
  CHECK_THROWS_AS(t.encode("a"), Error);
  test::write_file(dir / "cut.bin", file.substr(0, file.size() - 2));
  CHECK_THROWS_WITH(Tokenizer::load(dir / "cut.bin"),
                    Catch::Contains("is not a valid llm.c tokenizer file: it ends at token 2"));
}

TEST_CASE("a file that is no tokenizer is refused naming it", "[data]") {
  test::TempDir dir;
  test::write_file(dir / "junk.model", "definitely not a protobuf");
  CHECK_THROWS_WITH(Tokenizer::load(dir / "junk.model"),
                    Catch::Contains("neither a SentencePiece model nor llm.c's tokenizer"));
  CHECK_THROWS_WITH(Tokenizer::load(dir / "missing.model"), Catch::Contains("is not a file"));
}
