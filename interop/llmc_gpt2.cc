#include "interop/llmc_gpt2.h"

#include <cstring>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/printable.h"
#include "interop/saved_model.h"
#include "model/param_table.h"

namespace conveyor::interop {

namespace {

// llm.c's per-layer tensors, in its file order, as conveyor names them in a block.
constexpr const char* kLayerTensors[] = {"ln1.weight",    "ln1.bias",         "attn.qkv.weight",
                                         "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                                         "ln2.weight",    "ln2.bias",         "mlp.fc.weight",
                                         "mlp.fc.bias",   "mlp.proj.weight",  "mlp.proj.bias"};

}  // namespace

void export_llmc(const std::filesystem::path& step_dir, const std::filesystem::path& out_file) {
  namespace fs = std::filesystem;
  // OUT is a file, replaced whole (a link there is replaced, not followed): anything else
  // standing there is refused before any work.
  std::error_code ec;
  const auto st = fs::symlink_status(out_file, ec);
  if (fs::exists(st) && !fs::is_regular_file(st) && !fs::is_symlink(st)) {
    throw Error(ErrorKind::kUsage,
                fmt::format("export OUT {} is {}; --format llmc writes one file and left it as it "
                            "is",
                            printable(out_file.string(), 512),
                            fs::is_directory(st) ? "a folder"
                            : fs::is_fifo(st)    ? "a FIFO"
                                                 : "not a regular file"),
                "give the path of a file, or --format hf for a folder");
  }
  checkpoint::CheckpointReader reader(step_dir);
  const auto m = saved_model(reader);
  const int padded = (m.vocab + kLlmcVocabMultiple - 1) / kLlmcVocabMultiple * kLlmcVocabMultiple;
  std::vector<int32_t> header(kLlmcHeaderInts, 0);
  header[0] = kLlmcMagic;
  header[1] = kLlmcVersion;
  header[2] = m.seq;
  header[3] = m.vocab;
  header[4] = m.layers;
  header[5] = m.heads;
  header[6] = m.dim;
  header[7] = padded;

  std::string file(reinterpret_cast<const char*>(header.data()), header.size() * sizeof(int32_t));
  std::vector<float> buf;
  auto append = [&](const std::string& name, size_t pad_to = 0) {
    buf.assign(checkpoint::element_count(reader.shape(name)), 0.0f);
    reader.read(checkpoint::kParams, name, buf.data(), buf.size());
    if (pad_to > buf.size()) buf.resize(pad_to, 0.0f);
    file.append(reinterpret_cast<const char*>(buf.data()), buf.size() * sizeof(float));
  };
  append(model::kWteWeight, size_t(padded) * size_t(m.dim));
  append(model::kWpeWeight);
  for (const char* suffix : kLayerTensors)
    for (int layer = 0; layer < m.layers; ++layer) append(model::layer_param_name(layer, suffix));
  append(model::kLnFWeight);
  append(model::kLnFBias);
  write_file_atomic(out_file, file);  // temporary file, fsync, rename (common/file_io.h)
}

}  // namespace conveyor::interop
