// tinyattn/layers/mlp.hpp — the MLP of a block, as TransformerLens's MLP.
//
//   pre  = x W_in + b_in            (rows, M)      hook_pre
//   post = act(pre)                 (rows, M)      hook_post;  act = ReLU, or GELU in its exact erf form
//   out  = post W_out + b_out       (rows, D)
// GELU(x) = x Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2, and GELU'(x) = Phi(x) + x phi(x) with
// phi(x) = exp(-x^2 / 2) / sqrt(2 pi). ReLU'(0) = 0, as torch.
#pragma once

#include "tinyattn/backend/primitives.hpp"
#include "tinyattn/core/architecture.hpp"
#include "tinyattn/core/math.hpp"
#include "tinyattn/layers/matmul.hpp"

namespace tinyattn::layers {

template <class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE Scalar gelu(Scalar x) {
  return x * (Scalar(0.5) * (Scalar(1) + math::erf(x * Scalar(0.70710678118654752440))));
}
template <class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE Scalar gelu_derivative(Scalar x) {
  const Scalar cdf = Scalar(0.5) * (Scalar(1) + math::erf(x * Scalar(0.70710678118654752440)));
  const Scalar pdf = math::exp(Scalar(-0.5) * x * x) * Scalar(0.39894228040143267794);
  return cdf + x * pdf;
}

// The activation is a template argument, so that the vectorized loop over elements holds one of them
// (with a runtime choice inside, the vectorizer computes both and selects).
template <class Scalar, Activation act>
struct Activate {
  Scalar* post;
  const Scalar* pre;
  TINYATTN_HD void operator()(index_t i) const {
    const Scalar x = pre[i];
    post[i] = act == Activation::relu ? (x > Scalar(0) ? x : Scalar(0)) : gelu(x);
  }
};

template <class Scalar, Activation act>
struct ActivateBackward {
  Scalar* dpre;  // in: d post; out: d pre (in place)
  const Scalar* pre;
  TINYATTN_HD void operator()(index_t i) const {
    const Scalar x = pre[i];
    dpre[i] *= act == Activation::relu ? (x > Scalar(0) ? Scalar(1) : Scalar(0)) : gelu_derivative(x);
  }
};

// The forward after the input product: post (rows, M) and out (rows, D) from pre = x W_in + b_in,
// however pre was computed (the table engine mixes it from per-row products: model/table_heads.hpp).
template <class Backend, class Scalar>
void mlp_forward_from_pre(Scalar* out, const Scalar* pre, Scalar* post, const Scalar* w_out, const Scalar* b_out,
                          Activation act, index_t rows, index_t D, index_t M) {
  if (act == Activation::relu)
    Primitives<Backend>::for_each_simd(rows * M, Activate<Scalar, Activation::relu>{post, pre});
  else
    Primitives<Backend>::for_each_simd(rows * M, Activate<Scalar, Activation::gelu>{post, pre});
  matmul_forward<Backend>(out, D, post, M, w_out, D, rows, M, D);
  if (b_out) bias_forward<Backend>(out, D, b_out, rows, D);
}

// pre, post (rows, M) and out (rows, D) from x (rows, D). Biases may be null.
template <class Backend, class Scalar>
void mlp_forward(Scalar* out, Scalar* pre, Scalar* post, const Scalar* x, const Scalar* w_in, const Scalar* b_in,
                 const Scalar* w_out, const Scalar* b_out, Activation act, index_t rows, index_t D, index_t M) {
  matmul_forward<Backend>(pre, M, x, D, w_in, M, rows, D, M);
  if (b_in) bias_forward<Backend>(pre, M, b_in, rows, M);
  mlp_forward_from_pre<Backend>(out, pre, post, w_out, b_out, act, rows, D, M);
}

// The backward down to the input product: d W_out (and d b_out) +=, dpre (rows, M) = d pre.
template <class Backend, class Scalar>
void mlp_backward_to_pre(Scalar* dpre, Scalar* dw_out, Scalar* db_out, const Scalar* dout, const Scalar* pre,
                         const Scalar* post, const Scalar* w_out, Activation act, index_t rows, index_t D, index_t M) {
  matmul_backward_weight<Backend>(dw_out, D, post, M, dout, D, rows, M, D);
  if (db_out) bias_backward<Backend>(db_out, dout, D, rows, D);
  matmul_backward_input<Backend>(dpre, M, dout, D, w_out, D, rows, M, D, false);  // d post
  if (act == Activation::relu)
    Primitives<Backend>::for_each_simd(rows * M, ActivateBackward<Scalar, Activation::relu>{dpre, pre});
  else
    Primitives<Backend>::for_each_simd(rows * M, ActivateBackward<Scalar, Activation::gelu>{dpre, pre});
}

// The input product's backward: d W_in (and d b_in) +=, dx (rows, D) += dpre W_in^T.
template <class Backend, class Scalar>
void mlp_input_backward(Scalar* dx, Scalar* dw_in, Scalar* db_in, const Scalar* dpre, const Scalar* x,
                        const Scalar* w_in, index_t rows, index_t D, index_t M) {
  matmul_backward_weight<Backend>(dw_in, M, x, D, dpre, M, rows, D, M);
  if (db_in) bias_backward<Backend>(db_in, dpre, M, rows, M);
  matmul_backward_input<Backend>(dx, D, dpre, M, w_in, M, rows, D, M, true);
}

// dx (rows, D) += the input gradient; parameter gradients +=; dpost_scratch (rows, M) is overwritten.
template <class Backend, class Scalar>
void mlp_backward(Scalar* dx, Scalar* dw_in, Scalar* db_in, Scalar* dw_out, Scalar* db_out, Scalar* dpost_scratch,
                  const Scalar* dout, const Scalar* x, const Scalar* pre, const Scalar* post, const Scalar* w_in,
                  const Scalar* w_out, Activation act, index_t rows, index_t D, index_t M) {
  mlp_backward_to_pre<Backend>(dpost_scratch, dw_out, db_out, dout, pre, post, w_out, act, rows, D, M);
  mlp_input_backward<Backend>(dx, dw_in, db_in, dpost_scratch, x, w_in, rows, D, M);
}

}  // namespace tinyattn::layers
