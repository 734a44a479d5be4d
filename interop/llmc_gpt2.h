// GPT-2 weights in llm.c's checkpoint file (what karpathy/llm.c's train_gpt2 loads with
// gpt2_build_from_checkpoint; train_gpt2.py writes it):
//
//   header   256 x int32: [0] magic 20240326, [1] version 3 (fp32), [2] max_seq_len T,
//            [3] vocab_size V, [4] num_layers L, [5] num_heads NH, [6] channels C,
//            [7] padded_vocab_size Vp (V rounded up to a multiple of 128), rest zero
//   body     fp32, the 16 tensors in this order, each stacked over the L layers:
//            wte [Vp, C] (rows V..Vp-1 zero), wpe [T, C], ln1w [L, C], ln1b [L, C],
//            qkvw [L, 3C, C], qkvb [L, 3C], attprojw [L, C, C], attprojb [L, C],
//            ln2w [L, C], ln2b [L, C], fcw [L, 4C, C], fcb [L, 4C], fcprojw [L, C, 4C],
//            fcprojb [L, C], lnfw [C], lnfb [C]
// Weights are [out, in], as conveyor stores them; qkv rows are q, k, v with heads as
// contiguous slices, as in conveyor.
#pragma once

#include <cstdint>
#include <filesystem>

namespace conveyor::interop {

inline constexpr int32_t kLlmcMagic = 20240326;
inline constexpr int32_t kLlmcVersion = 3;
inline constexpr int kLlmcHeaderInts = 256;
inline constexpr int kLlmcVocabMultiple = 128;

// Writes `out_file` from a committed checkpoint step (any shard count), replaced whole
// (common/file_io.h: temporary name, fsync, rename; a link there is replaced, not followed).
// Throws Error(kUsage), before any work, when `out_file` is a folder, FIFO or device; kUsage
// for a checkpoint without its model configuration, kRuntime when writing fails.
void export_llmc(const std::filesystem::path& step_dir, const std::filesystem::path& out_file);

}  // namespace conveyor::interop
