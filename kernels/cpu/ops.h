// CPU reference kernels: forward and backward of every op GPT-2 needs (the contracts of
// kernels/backend.h; CpuBackend calls these).
//
// Layout: row-major; activations are [N, C] with N = B*T rows (B sequences of T tokens).
// Linear weights are stored [out, in] like PyTorch's nn.Linear; y = x @ W^T + b.
//
// Gradient convention (llm.c style): every backward function ACCUMULATES (+=) into its
// gradient outputs (dinp, dweight, dbias). Callers zero the buffers they own. Weight
// gradients are summed over micro-batches in the order the caller calls them.
//
// Determinism: every function gives the same bits for the same inputs, whatever the
// number of threads OpenBLAS or the caller uses. No function keeps state between calls.
// Thread safety: functions may run concurrently on disjoint outputs.
//
// Threads: the kernels parallelise themselves (a process-wide pool, see set_num_threads)
// over tasks cut by shape alone, and call OpenBLAS single-threaded from those tasks; they
// set OpenBLAS's own thread count to 1, because OpenBLAS's internal threading changes
// results with the thread count.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/backend.h"

namespace conveyor::cpu {

// ---- Embedding: out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:] ----------------------------
void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B,
                       int T, int C);
// dwte[tok] += dout; dwpe[t] += dout. Rows are visited in ascending (b, t) order.
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B,
                        int T, int C);

// ---- LayerNorm over the last dim, eps 1e-5 ----------------------------------------------
// mean, rstd: [N] saved for backward.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C);
// Input gradient only (the "B" part).
void layernorm_backward_input(float* dinp, const float* dout, const float* inp, const float* weight,
                              const float* mean, const float* rstd, int N, int C);
// Weight/bias gradient only (the "W" part).
void layernorm_backward_weight(float* dweight, float* dbias, const float* dout, const float* inp,
                               const float* mean, const float* rstd, int N, int C);

// ---- Linear: out[N,OC] = inp[N,IC] @ weight[OC,IC]^T + bias[OC] (bias may be null) ----
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                    int IC, int OC);
// dinp[N,IC] += dout[N,OC] @ weight[OC,IC]
void linear_backward_input(float* dinp, const float* dout, const float* weight, int N, int IC,
                           int OC);
// dweight[OC,IC] += dout^T @ inp; dbias[OC] += sum over rows of dout (dbias may be null).
void linear_backward_weight(float* dweight, float* dbias, const float* dout, const float* inp,
                            int N, int IC, int OC);

// ---- Causal multi-head self-attention ---------------------------------------------------
// qkv: [B,T,3C] (q, then k, then v; head h uses columns h*C/NH .. (h+1)*C/NH-1 of each).
// att: [B,NH,T,T] softmax probabilities saved for backward (upper triangle is zero).
// out: [B,T,C], heads concatenated. Both throw conveyor::Error if C % NH != 0.
void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH);
// dqkv += gradient of out w.r.t. qkv. scratch: at least B*NH*T*T floats, contents ignored.
void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                        const float* att, int B, int T, int C, int NH);

// ---- GELU, tanh approximation (GPT-2's) -------------------------------------------------
void gelu_forward(float* out, const float* inp, size_t n);
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n);

// ---- Residual: out = a + b --------------------------------------------------------------
void residual_forward(float* out, const float* a, const float* b, size_t n);

// ---- Softmax cross-entropy over V classes -----------------------------------------------
// probs: [N,V] saved for backward; losses: [N] per-row -log p[target].
void crossentropy_forward(float* losses, float* probs, const float* logits, const int32_t* targets,
                          int N, int V);
// dlogits += (probs - onehot(target)) * scale   (scale is usually 1 / total token count)
// Both throw conveyor::Error (kRuntime) if a target is outside [0, V), before writing.
void crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets, float scale,
                           int N, int V);

// ---- Optimizer and gradient norm --------------------------------------------------------
using AdamWParams = kernels::AdamWParams;  // one definition, in kernels/adamw.h
// Decoupled weight decay (AdamW): p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p).
void adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, size_t n,
                  const AdamWParams& hp);
// Sum in double precision, in index order.
double sum(const float* x, size_t n);
// Sum of squares in double precision, summed in index order.
double sum_of_squares(const float* x, size_t n);
// x *= s
void scale_inplace(float* x, size_t n, float s);
// x += y
void add_inplace(float* x, const float* y, size_t n);

// ---- Threads ----------------------------------------------------------------------------
// Threads the kernels use (the caller included). Default: $CONVEYOR_CPU_THREADS, else the
// number of hardware threads. Results do not depend on it. Blocks while a kernel of
// another thread is running in parallel.
void set_num_threads(int n);
int num_threads();

}  // namespace conveyor::cpu
