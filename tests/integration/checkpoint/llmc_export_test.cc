// `conveyor ckpt export --format llmc`: llm.c's GPT-2 checkpoint file, checked field by field
// and tensor by tensor against llm.c's documented layout (interop/llmc_gpt2.h), written here
// independently of the exporter from the checkpoint's parameters read by name.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "checkpoint/checkpoint.h"
#include "tests/integration/checkpoint/train_helpers.h"

using namespace conveyor;
using namespace conveyor::test;
using namespace conveyor::test::ckpt;

TEST_CASE("an llm.c export has llm.c's header and parameter order", "[checkpoint][interop]") {
  TempDir dir;
  const auto root = dir / "ckpt";
  // 300 tokens: padded to 384 rows in the file; 2 stages: read back by name.
  auto trained = train(2, {"--steps", "2", "--vocab", "300", "--ckpt-dir", root.string()});
  INFO(trained.output);
  REQUIRE(trained.exit_code == 0);
  const auto file = dir / "gpt2.bin";
  auto exported =
      run_conveyor({"ckpt", "export", "--format", "llmc", root.string(), file.string()});
  INFO(exported.output);
  REQUIRE(exported.exit_code == 0);

  const std::string bytes = read_file(file);
  REQUIRE(bytes.size() >= 1024);
  int32_t header[256];
  std::memcpy(header, bytes.data(), sizeof header);
  checkpoint::CheckpointReader reader(root / "step_000000002");
  const auto model = reader.manifest().config.at("model");
  const int T = model.at("seq"), V = model.at("vocab"), L = model.at("layers"),
            NH = model.at("heads"), C = model.at("dim");
  CHECK(header[0] == 20240326);
  CHECK(header[1] == 3);
  CHECK(header[2] == T);
  CHECK(header[3] == V);
  CHECK(V == 300);
  CHECK(header[4] == L);
  CHECK(header[5] == NH);
  CHECK(header[6] == C);
  CHECK(header[7] == 384);
  for (int i = 8; i < 256; ++i) CHECK(header[i] == 0);

  // llm.c's 16 tensors, each over all layers in turn.
  size_t at = 1024;
  auto expect = [&](const std::string& name, size_t padded_count = 0) {
    INFO(name);
    std::vector<float> want(checkpoint::element_count(reader.shape(name)));
    reader.read(checkpoint::kParams, name, want.data(), want.size());
    want.resize(std::max(want.size(), padded_count), 0.0f);
    REQUIRE(at + want.size() * 4 <= bytes.size());
    std::vector<float> got(want.size());
    std::memcpy(got.data(), bytes.data() + at, got.size() * 4);
    CHECK(got == want);
    at += want.size() * 4;
  };
  expect("wte.weight", size_t(384) * C);
  expect("wpe.weight");
  for (const char* suffix : {"ln1.weight", "ln1.bias", "attn.qkv.weight", "attn.qkv.bias",
                             "attn.proj.weight", "attn.proj.bias", "ln2.weight", "ln2.bias",
                             "mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight", "mlp.proj.bias"})
    for (int l = 0; l < L; ++l) expect(fmt::format("layers.{:03d}.{}", l, suffix));
  expect("ln_f.weight");
  expect("ln_f.bias");
  CHECK(at == bytes.size());
}
