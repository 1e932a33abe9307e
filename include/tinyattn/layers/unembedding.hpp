// tinyattn/layers/unembedding.hpp — logits from the final residual stream.
//
//   tied:    logits = x W_E^T                (rows, V)       W_E (V, D) is also the token embedding
//   untied:  logits = x W_U + b_U            (rows, V_out)   W_U (D, V_out), b_U (V_out) or null
// Backward: tied   dW_E += dlogits^T x,      dx = dlogits W_E
//           untied dW_U += x^T dlogits,      db_U += column sums,  dx = dlogits W_U^T
#pragma once

#include "tinyattn/layers/matmul.hpp"

namespace tinyattn::layers {

template <class Backend, class Scalar>
void unembedding_forward(Scalar* logits, const Scalar* x, const Scalar* w_e, const Scalar* w_u, const Scalar* b_u,
                         bool tied, index_t rows, index_t D, index_t V_out) {
  if (tied) {
    matmul_forward_transposed<Backend>(logits, V_out, x, D, w_e, D, rows, D, V_out);
    return;
  }
  matmul_forward<Backend>(logits, V_out, x, D, w_u, V_out, rows, D, V_out);
  if (b_u) bias_forward<Backend>(logits, V_out, b_u, rows, V_out);
}

// dx (rows, D) = the input gradient (written); dW_E or dW_U, db_U += (db_U when non-null).
template <class Backend, class Scalar>
void unembedding_backward(Scalar* dx, Scalar* dw_e, Scalar* dw_u, Scalar* db_u, const Scalar* dlogits, const Scalar* x,
                          const Scalar* w_e, const Scalar* w_u, bool tied, index_t rows, index_t D, index_t V_out) {
  if (tied) {
    matmul_backward_weight<Backend>(dw_e, D, dlogits, V_out, x, D, rows, V_out, D);
    matmul_forward<Backend>(dx, D, dlogits, V_out, w_e, D, rows, V_out, D);
    return;
  }
  matmul_backward_weight<Backend>(dw_u, V_out, x, D, dlogits, V_out, rows, D, V_out);
  if (db_u) bias_backward<Backend>(db_u, dlogits, V_out, rows, V_out);
  matmul_backward_input<Backend>(dx, D, dlogits, V_out, w_u, V_out, rows, D, V_out, false);
}

}  // namespace tinyattn::layers
