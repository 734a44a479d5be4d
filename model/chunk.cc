#include "model/chunk.h"

#include <algorithm>

#include "common/error.h"

namespace conveyor::model {

namespace {
void zero(kernels::Backend& k, float* p, size_t n) {
  k.zero(p, n * sizeof(float));
}
void copy(kernels::Backend& k, float* dst, const float* src, size_t n) {
  k.copy(dst, src, n * sizeof(float));
}
}  // namespace

// Pointers to one block's parameters and their gradients in the store.
struct ModelChunk::LayerParams {
  float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b;
  float *ln2_w, *ln2_b, *fc_w, *fc_b, *mproj_w, *mproj_b;
  float *d_ln1_w, *d_ln1_b, *d_qkv_w, *d_qkv_b, *d_proj_w, *d_proj_b;
  float *d_ln2_w, *d_ln2_b, *d_fc_w, *d_fc_b, *d_mproj_w, *d_mproj_b;
};

// Offsets (in floats) of every tensor inside a Slot's buffer. One table, computed once. Size
// is size_t for the real layout and double for ModelChunk::slot_floats()'s estimate (which
// must not overflow on absurd shapes, so that they can be refused).
template <class Size>
struct SlotLayout {
  struct LayerOffsets {
    // forward activations
    Size ln1, ln1_mean, ln1_rstd, qkv, att, atty, res2, ln2, ln2_mean, ln2_rstd, fch, fch_gelu,
        res3;
    // gradient stash for W
    Size d_res3, d_fch, d_ln2, d_res2, d_qkv, d_ln1;
  };
  std::vector<LayerOffsets> layers;
  // The tensors that cross the wire, together at the start of the buffer (wire_floats of
  // them), so the transport registers and stages only those: the output is the last
  // layer's res3.
  Size input, input_grad, output_grad, output, wire_floats;
  Size lnf, lnf_mean, lnf_rstd, probs, losses, d_logits, d_lnf;  // head only
  Size total = 0;

  SlotLayout(int num_layers, bool head, Size B, Size T, Size C, Size NH, Size V) {
    const Size N = B * T;
    auto take = [&](Size n) {
      Size at = total;
      total += n;
      return at;
    };
    input = take(N * C);
    input_grad = take(N * C);
    output_grad = take(N * C);
    output = take(N * C);
    wire_floats = total;
    for (int l = 0; l < num_layers; ++l) {
      LayerOffsets o{};
      o.ln1 = take(N * C);
      o.ln1_mean = take(N);
      o.ln1_rstd = take(N);
      o.qkv = take(3 * N * C);
      o.att = take(B * NH * T * T);
      o.atty = take(N * C);
      o.res2 = take(N * C);
      o.ln2 = take(N * C);
      o.ln2_mean = take(N);
      o.ln2_rstd = take(N);
      o.fch = take(4 * N * C);
      o.fch_gelu = take(4 * N * C);
      o.res3 = l + 1 == num_layers ? output : take(N * C);
      o.d_res3 = take(N * C);
      o.d_fch = take(4 * N * C);
      o.d_ln2 = take(N * C);
      o.d_res2 = take(N * C);
      o.d_qkv = take(3 * N * C);
      o.d_ln1 = take(N * C);
      layers.push_back(o);
    }
    lnf = lnf_mean = lnf_rstd = probs = losses = d_logits = d_lnf = 0;
    if (head) {
      lnf = take(N * C);
      lnf_mean = take(N);
      lnf_rstd = take(N);
      probs = take(N * V);
      losses = take(N);
      d_logits = take(N * V);
      d_lnf = take(N * C);
    }
  }
};

struct ModelChunk::Layout : SlotLayout<size_t> {
  using SlotLayout<size_t>::SlotLayout;
};

double ModelChunk::slot_floats(const ModelConfig& config, const ChunkSpec& spec,
                               int micro_batch_size) {
  const SlotLayout<double> layout(spec.num_layers, spec.has_head, micro_batch_size, config.seq,
                                  config.dim, config.heads, config.vocab);
  return layout.total + 2.0 * micro_batch_size * config.seq;  // + tokens and targets
}

double ModelChunk::scratch_floats(const ModelConfig& config, const ChunkSpec& spec,
                                  int micro_batch_size) {
  const double N = double(micro_batch_size) * config.seq, C = config.dim;
  double n = 6 * N * C + double(micro_batch_size) * config.heads * config.seq * config.seq;
  if (spec.has_head) n += N * config.vocab + double(config.vocab) * C;
  return n;
}

ModelChunk::ModelChunk(const ModelConfig& config, const ChunkSpec& spec, ParamStore& store,
                       int micro_batch_size)
    : config_(config),
      spec_(spec),
      store_(store),
      k_(store.backend()),
      B_(micro_batch_size),
      T_(config.seq),
      C_(config.dim),
      NH_(config.heads),
      V_(config.vocab),
      N_(micro_batch_size * config.seq) {
  CONVEYOR_CHECK(spec.num_layers >= 1, "a chunk needs at least one layer");
  layout_ = std::make_unique<Layout>(spec.num_layers, spec.has_head, B_, T_, C_, NH_, V_);
  for (int i = 0; i < spec.num_layers; ++i) {
    const int layer = spec.first_layer + i;
    auto P = [&](const char* s) { return store.param(layer_param_name(layer, s)); };
    auto G = [&](const char* s) { return store.grad(layer_param_name(layer, s)); };
    layers_.push_back(LayerParams{
        P("ln1.weight"),       P("ln1.bias"),       P("attn.qkv.weight"), P("attn.qkv.bias"),
        P("attn.proj.weight"), P("attn.proj.bias"), P("ln2.weight"),      P("ln2.bias"),
        P("mlp.fc.weight"),    P("mlp.fc.bias"),    P("mlp.proj.weight"), P("mlp.proj.bias"),
        G("ln1.weight"),       G("ln1.bias"),       G("attn.qkv.weight"), G("attn.qkv.bias"),
        G("attn.proj.weight"), G("attn.proj.bias"), G("ln2.weight"),      G("ln2.bias"),
        G("mlp.fc.weight"),    G("mlp.fc.bias"),    G("mlp.proj.weight"), G("mlp.proj.bias")});
  }
  const size_t N = N_, C = C_;
  scratch_nc_ = k_.alloc<float>(N * C);
  scratch_nc2_ = k_.alloc<float>(N * C);
  scratch_n4c_ = k_.alloc<float>(4 * N * C);
  scratch_att_ = k_.alloc<float>(static_cast<size_t>(B_) * NH_ * T_ * T_);
  if (spec.has_head) {
    scratch_logits_ = k_.alloc<float>(N * V_);
    head_wte_grad_ = k_.alloc<float>(static_cast<size_t>(V_) * C);  // zero-filled
  }
}

ModelChunk::~ModelChunk() = default;

std::unique_ptr<Slot> ModelChunk::make_slot() const {
  auto slot = std::make_unique<Slot>();
  slot->buffer_ = k_.alloc<float>(layout_->total);  // zero-filled
  slot->tokens_ = k_.alloc<int32_t>(N_);
  slot->targets_ = k_.alloc<int32_t>(N_);
  float* base = slot->buffer_.data();
  slot->input_ = base + layout_->input;
  slot->input_grad_ = base + layout_->input_grad;
  slot->output_grad_ = base + layout_->output_grad;
  slot->output_ = base + layout_->output;
  slot->wire_bytes_ = layout_->wire_floats * sizeof(float);
  slot->probs_ = spec_.has_head ? base + layout_->probs : nullptr;
  return slot;
}

const float* ModelChunk::layer_input(int l, Slot& slot) {
  float* base = slot.buffer_.data();
  return l == 0 ? slot.input_ : base + layout_->layers[l - 1].res3;
}

void ModelChunk::layer_forward(int l, Slot& slot, const float* x) {
  const auto& o = layout_->layers[l];
  const auto& w = layers_[l];
  float* a = slot.buffer_.data();
  const int N = N_, C = C_;
  k_.layernorm_forward(a + o.ln1, a + o.ln1_mean, a + o.ln1_rstd, x, w.ln1_w, w.ln1_b, N, C);
  k_.linear_forward(a + o.qkv, a + o.ln1, w.qkv_w, w.qkv_b, N, C, 3 * C);
  k_.attention_forward(a + o.atty, a + o.att, a + o.qkv, B_, T_, C, NH_);
  k_.linear_forward(scratch_nc_.data(), a + o.atty, w.proj_w, w.proj_b, N, C, C);
  k_.residual_forward(a + o.res2, x, scratch_nc_.data(), size_t(N) * C);
  k_.layernorm_forward(a + o.ln2, a + o.ln2_mean, a + o.ln2_rstd, a + o.res2, w.ln2_w, w.ln2_b, N,
                       C);
  k_.linear_forward(a + o.fch, a + o.ln2, w.fc_w, w.fc_b, N, C, 4 * C);
  k_.gelu_forward(a + o.fch_gelu, a + o.fch, size_t(N) * 4 * C);
  k_.linear_forward(scratch_nc_.data(), a + o.fch_gelu, w.mproj_w, w.mproj_b, N, 4 * C, C);
  k_.residual_forward(a + o.res3, a + o.res2, scratch_nc_.data(), size_t(N) * C);
}

void ModelChunk::forward(Slot& slot) {
  const int C = C_;
  if (spec_.has_embedding) {
    k_.embedding_forward(slot.input_, slot.tokens_.data(), store_.param(kWteWeight),
                         store_.param(kWpeWeight), B_, T_, C);
  }
  for (int l = 0; l < spec_.num_layers; ++l) layer_forward(l, slot, layer_input(l, slot));
  if (!spec_.has_head) return;

  float* a = slot.buffer_.data();
  const auto& h = *layout_;
  k_.layernorm_forward(a + h.lnf, a + h.lnf_mean, a + h.lnf_rstd, slot.output_,
                       store_.param(kLnFWeight), store_.param(kLnFBias), N_, C);
  k_.linear_forward(scratch_logits_.data(), a + h.lnf, store_.param(kWteWeight), nullptr, N_, C,
                    V_);
  k_.crossentropy_forward(a + h.losses, a + h.probs, scratch_logits_.data(), slot.targets_.data(),
                          N_, V_);
  slot.loss_ = static_cast<float>(k_.sum(a + h.losses, N_) / N_);
}

void ModelChunk::layer_backward_input(int l, Slot& slot, const float* x, float* dres) {
  const auto& o = layout_->layers[l];
  const auto& w = layers_[l];
  float* a = slot.buffer_.data();
  const int N = N_, C = C_;
  const size_t NC = size_t(N) * C;
  // MLP branch: dres is the gradient w.r.t. the block output (= w.r.t. res2 via the residual).
  copy(k_, a + o.d_res3, dres, NC);
  zero(k_, scratch_n4c_.data(), 4 * NC);
  k_.linear_backward_input(scratch_n4c_.data(), dres, w.mproj_w, N, 4 * C, C);
  zero(k_, a + o.d_fch, 4 * NC);
  k_.gelu_backward(a + o.d_fch, a + o.fch, scratch_n4c_.data(), 4 * NC);
  zero(k_, a + o.d_ln2, NC);
  k_.linear_backward_input(a + o.d_ln2, a + o.d_fch, w.fc_w, N, C, 4 * C);
  k_.layernorm_backward_input(dres, a + o.d_ln2, a + o.res2, w.ln2_w, a + o.ln2_mean,
                              a + o.ln2_rstd, N, C);
  // Attention branch: dres is now the gradient w.r.t. res2 (= w.r.t. x via the residual).
  copy(k_, a + o.d_res2, dres, NC);
  zero(k_, scratch_nc2_.data(), NC);
  k_.linear_backward_input(scratch_nc2_.data(), dres, w.proj_w, N, C, C);
  zero(k_, a + o.d_qkv, 3 * NC);
  k_.attention_backward(a + o.d_qkv, scratch_att_.data(), scratch_nc2_.data(), a + o.qkv, a + o.att,
                        B_, T_, C, NH_);
  zero(k_, a + o.d_ln1, NC);
  k_.linear_backward_input(a + o.d_ln1, a + o.d_qkv, w.qkv_w, N, C, 3 * C);
  k_.layernorm_backward_input(dres, a + o.d_ln1, x, w.ln1_w, a + o.ln1_mean, a + o.ln1_rstd, N, C);
}

void ModelChunk::backward_input(Slot& slot, float loss_scale) {
  const int C = C_;
  const size_t NC = size_t(N_) * C;
  float* dres = slot.input_grad_;  // the running gradient; ends as the gradient of the input
  float* a = slot.buffer_.data();
  if (spec_.has_head) {
    const auto& h = *layout_;
    zero(k_, a + h.d_logits, size_t(N_) * V_);
    k_.crossentropy_backward(a + h.d_logits, a + h.probs, slot.targets_.data(), loss_scale, N_, V_);
    zero(k_, a + h.d_lnf, NC);
    k_.linear_backward_input(a + h.d_lnf, a + h.d_logits, store_.param(kWteWeight), N_, C, V_);
    zero(k_, dres, NC);
    k_.layernorm_backward_input(dres, a + h.d_lnf, slot.output_, store_.param(kLnFWeight),
                                a + h.lnf_mean, a + h.lnf_rstd, N_, C);
  } else {
    copy(k_, dres, slot.output_grad_, NC);
  }
  for (int l = spec_.num_layers - 1; l >= 0; --l) {
    layer_backward_input(l, slot, layer_input(l, slot), dres);
  }
}

void ModelChunk::layer_backward_weight(int l, Slot& slot, const float* x) {
  const auto& o = layout_->layers[l];
  const auto& w = layers_[l];
  const float* a = slot.buffer_.data();
  const int N = N_, C = C_;
  k_.linear_backward_weight(w.d_mproj_w, w.d_mproj_b, a + o.d_res3, a + o.fch_gelu, N, 4 * C, C);
  k_.linear_backward_weight(w.d_fc_w, w.d_fc_b, a + o.d_fch, a + o.ln2, N, C, 4 * C);
  k_.layernorm_backward_weight(w.d_ln2_w, w.d_ln2_b, a + o.d_ln2, a + o.res2, a + o.ln2_mean,
                               a + o.ln2_rstd, N, C);
  k_.linear_backward_weight(w.d_proj_w, w.d_proj_b, a + o.d_res2, a + o.atty, N, C, C);
  k_.linear_backward_weight(w.d_qkv_w, w.d_qkv_b, a + o.d_qkv, a + o.ln1, N, C, 3 * C);
  k_.layernorm_backward_weight(w.d_ln1_w, w.d_ln1_b, a + o.d_ln1, x, a + o.ln1_mean, a + o.ln1_rstd,
                               N, C);
}

void ModelChunk::backward_weight(Slot& slot, const std::function<void(int)>& done) {
  const int C = C_;
  const float* a = slot.buffer_.data();
  if (spec_.has_head) {
    const auto& h = *layout_;
    k_.linear_backward_weight(head_wte_grad_.data(), nullptr, a + h.d_logits, a + h.lnf, N_, C, V_);
    k_.layernorm_backward_weight(store_.grad(kLnFWeight), store_.grad(kLnFBias), a + h.d_lnf,
                                 slot.output_, a + h.lnf_mean, a + h.lnf_rstd, N_, C);
    if (done) done(store_.index(kLnFWeight));
  }
  for (int l = spec_.num_layers - 1; l >= 0; --l) {
    layer_backward_weight(l, slot, layer_input(l, slot));
    if (done) done(store_.index(layer_param_name(spec_.first_layer + l, "ln1.weight")));
  }
  if (spec_.has_embedding) {
    k_.embedding_backward(store_.grad(kWteWeight), store_.grad(kWpeWeight), slot.input_grad_,
                          slot.tokens_.data(), B_, T_, C);
    if (done) done(store_.index(kWteWeight));
  }
}

}  // namespace conveyor::model
