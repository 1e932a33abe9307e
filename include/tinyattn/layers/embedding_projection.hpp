// tinyattn/layers/embedding_projection.hpp — the first block's q, k, v read from tables, when that block
// reads the embeddings themselves (no LayerNorm in front of it).
//
// Block 0's input row is x[b, t] = W_E[token] + W_pos[t], and a projection is linear, so
//   k[b, t] = x[b, t] W_K + b_K = (W_E W_K)[token] + (W_pos W_K)[t] + b_K
// (q and v likewise): a table of V rows and one of T rows, made once per pass, replace the product of
// every row of the batch with W_K. The backward follows the same way: with S_tok[v] the sum of dk over
// the rows whose token is v, and S_pos[t] the sum over b of dk[b, t],
//   dW_K += W_E^T S_tok + W_pos^T S_pos      d W_E += S_tok W_K^T      d W_pos += S_pos W_K^T
// which is dW_K = x^T dk and the embeddings' share of dx = dk W_K^T, summed by token and position before
// the products instead of after. The same model and the same gradients as qkv_forward / qkv_backward
// (layers/attention.hpp), up to rounding; worth it when V + T is small against the rows of a batch.
#pragma once

#include "tinyattn/backend/primitives.hpp"
#include "tinyattn/layers/embedding.hpp"
#include "tinyattn/layers/matmul.hpp"

namespace tinyattn::layers {

// token_table (V, width) = W_E (V, D) W;  position_table (T, width) = W_pos (T, D) W, with W (D, width)
// one projection's weights as columns (layers/attention.hpp, heads_to_columns).
template <class Backend, class Scalar>
void projection_tables(Scalar* token_table, Scalar* position_table, const Scalar* w_e, const Scalar* w_pos,
                       const Scalar* w_cols, index_t V, index_t T, index_t D, index_t width) {
  matmul_forward<Backend>(token_table, width, w_e, D, w_cols, width, V, D, width);
  matmul_forward<Backend>(position_table, width, w_pos, D, w_cols, width, T, D, width);
}

template <class Scalar>
struct ProjectionFromTables {  // out[b, t] = token_table[token] + position_table[t] (+ bias)
  Scalar* out;
  const Scalar* token_table;
  const Scalar* position_table;
  const Scalar* bias;  // or null
  const index_t* tokens;
  index_t T, width;
  TINYATTN_HD void operator()(index_t row, index_t c0, index_t c1) const {  // row = (b, t)
    const Scalar* e = token_table + static_cast<std::ptrdiff_t>(tokens[row]) * width;
    const Scalar* p = position_table + static_cast<std::ptrdiff_t>(row % T) * width;
    Scalar* o = out + static_cast<std::ptrdiff_t>(row) * width;
    if (bias)
      for (index_t c = c0; c < c1; ++c) o[c] = e[c] + p[c] + bias[c];
    else
      for (index_t c = c0; c < c1; ++c) o[c] = e[c] + p[c];
  }
};

// out (B, T, width) = token_table[tokens] + position_table + bias (null: none).   tokens (B, T).
template <class Backend, class Scalar>
void projection_from_tables_forward(Scalar* out, const Scalar* token_table, const Scalar* position_table,
                                    const Scalar* bias, const index_t* tokens, index_t B, index_t T, index_t width) {
  Primitives<Backend>::for_each_row(
      B * T, width, ProjectionFromTables<Scalar>{out, token_table, position_table, bias, tokens, T, width});
}

// From d out (B, T, width): dW (D, width, as columns) += W_E^T S_tok + W_pos^T S_pos, dW_E (V, D) +=
// S_tok W^T, dW_pos (T, D) += S_pos W^T, d bias += column sums (null: none). s_tok (V, width) and s_pos
// (T, width) are scratch, overwritten. token_begin / token_row: the batch's rows by token
// (layers/embedding.hpp).
template <class Backend, class Scalar>
void projection_from_tables_backward(Scalar* dw_e, Scalar* dw_pos, Scalar* dw_cols, Scalar* dbias, Scalar* s_tok,
                                     Scalar* s_pos, const Scalar* dout, const Scalar* w_e, const Scalar* w_pos,
                                     const Scalar* w_cols, const index_t* token_begin, const index_t* token_row,
                                     index_t B, index_t T, index_t V, index_t D, index_t width) {
  using P = Primitives<Backend>;
  P::fill(s_tok, static_cast<std::size_t>(V) * width, Scalar(0));
  P::fill(s_pos, static_cast<std::size_t>(T) * width, Scalar(0));
  embedding_backward<Backend>(s_tok, s_pos, dout, token_begin, token_row, B, T, V, width);  // S_tok, S_pos
  matmul_backward_weight<Backend>(dw_cols, width, w_e, D, s_tok, width, V, D, width);
  matmul_backward_weight<Backend>(dw_cols, width, w_pos, D, s_pos, width, T, D, width);
  matmul_backward_input<Backend>(dw_e, D, s_tok, width, w_cols, width, V, D, width, true);
  matmul_backward_input<Backend>(dw_pos, D, s_pos, width, w_cols, width, T, D, width, true);
  if (dbias) bias_backward<Backend>(dbias, dout, width, B * T, width);
}

}  // namespace tinyattn::layers
