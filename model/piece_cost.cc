#include "model/piece_cost.h"

#include "model/flops.h"

namespace conveyor::model {
namespace {

// Tokens of one micro-batch.
double tokens(const ModelConfig& c, int micro_batch_size) {
  return double(micro_batch_size) * double(c.seq);
}

constexpr double kFloatBytes = 4;

}  // namespace

PieceWork block_work(const ModelConfig& c, int micro_batch_size) {
  const double d = c.dim, T = c.seq, H = c.heads, n = tokens(c, micro_batch_size);
  // Floats per token, by pass (model/chunk.cc): forward LayerNorm x2, residual x2, GELU over
  // 4d, softmax rows; input gradient the same ops backward plus the zero-fills and copies
  // before each accumulation; weight gradient the bias and LayerNorm sums.
  const double forward = 18 * d + 2 * H * T;
  const double input_grad = 42 * d + 3 * H * T;
  const double weight_grad = 13 * d;
  return {n * block_training_flops_per_token(c),
          n * kFloatBytes * (forward + input_grad + weight_grad)};
}

PieceWork embedding_work(const ModelConfig& c, int micro_batch_size) {
  const double d = c.dim, n = tokens(c, micro_batch_size);
  // Forward reads a wte and a wpe row and writes their sum (3d); the weight gradient reads
  // the gradient and adds it into a wte and a wpe row (5d).
  return {0, n * kFloatBytes * (3 * d + 5 * d)};
}

PieceWork head_work(const ModelConfig& c, int micro_batch_size) {
  const double d = c.dim, V = c.vocab, n = tokens(c, micro_batch_size);
  // Over the vocabulary: forward max, copy, exponentiate, normalise (7V); backward zero-fill
  // and the gradient of the cross-entropy (4V). Over the width: ln_f forward, backward and
  // weight gradient, and two zero-fills (12d).
  return {n * head_training_flops_per_token(c), n * kFloatBytes * (11 * V + 12 * d)};
}

PieceWork piece_work(const ModelConfig& c, const ChunkSpec& piece, int micro_batch_size) {
  const PieceWork block = block_work(c, micro_batch_size);
  PieceWork w{piece.num_layers * block.flops, piece.num_layers * block.bytes};
  if (piece.has_embedding) w += embedding_work(c, micro_batch_size);
  if (piece.has_head) w += head_work(c, micro_batch_size);
  return w;
}

}  // namespace conveyor::model
