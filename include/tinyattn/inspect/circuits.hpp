// tinyattn/inspect/circuits.hpp — the QK and OV circuits of each head of a one-block model.
//
// A row is a (token, position) pair: its embedding x = W_E[token] + W_pos[position] (after ln1, with a
// LayerNorm) is all a first-block head reads. For head h:
//   QK circuit  qk[h][q_row][k_row] = q_h(q_row) . k_h(k_row)     the unscaled score of a query row
//               against a key row (the attention of a sample is the softmax of its rows' entries);
//   OV circuit  ov[h][k_row][c]     = (v_h(k_row) W_O[h]) W_U[:, c]  how attending to the key row with
//               weight 1 moves output logit c (tied: W_U = W_E^T; a LayerNorm before the unembedding is
//               left out, as in TransformerLens's direct path).
// Rows are numbered position-major: row = position * V + token.
//
// For the models the table engine serves (model/table_engine.hpp: the reference experiment, the grokking
// model) these are the engine's own tables — the score table of every row against every row and the
// logit table (or, untied, the u_h rows through W_U) — taken from it, not recomputed another way. For
// other one-block models they come from the reference engine's activations (hook_q, hook_k, hook_v).
#pragma once

#include <string>
#include <vector>

#include "tinyattn/layers/matmul.hpp"
#include "tinyattn/model/row_tables.hpp"
#include "tinyattn/model/transformer.hpp"

namespace tinyattn {

template <class Scalar>
struct Circuits {
  index_t heads = 0, rows = 0, vocab = 0, context = 0, vocab_out = 0;
  std::vector<Scalar> qk;  // (H, rows, rows)
  std::vector<Scalar> ov;  // (H, rows, V_out)
  index_t row(index_t token, index_t position) const { return position * vocab + token; }
  Scalar qk_at(index_t h, index_t q_row, index_t k_row) const {
    return qk[(static_cast<std::size_t>(h) * rows + q_row) * rows + k_row];
  }
  const Scalar* ov_row(index_t h, index_t k_row) const { return ov.data() + (static_cast<std::size_t>(h) * rows + k_row) * vocab_out; }
};

// A batch whose rows cover every (token, position) pair: sample v holds token v at every position.
inline TokenBatch every_row_batch(index_t vocab, index_t context) {
  TokenBatch batch;
  batch.context = context;
  for (index_t v = 0; v < vocab; ++v)
    for (index_t t = 0; t < context; ++t) batch.tokens.push_back(v);
  return batch;
}

namespace detail {

template <class Net>
Circuits<typename Net::scalar_type> circuits_from_tables(const Net& net) {
  using Shape = typename Net::Shape;
  using Arch = typename Net::Architecture;
  using Backend = typename Net::backend_type;
  using Scalar = typename Net::scalar_type;
  using P = Primitives<Backend>;
  using Ly = Layers<Shape, Backend, Scalar>;
  constexpr index_t V = Net::vocab, T = Net::context, H = Net::heads, V_out = Net::vocab_out, D = Net::d_model;
  const TokenBatch all = every_row_batch(V, T);
  const RowSpace space(V, T, {std::cref(all)});
  const index_t R = space.size();
  RowTables<Shape, Backend, Scalar> tables(space, /*with_logit_table=*/Arch::tied && !Arch::has_mlp, false);
  tables.compute(net.parameter_data());
  // The score table of every row against every row: the engine's scores layer with all rows as queries.
  typename P::template buffer<Scalar> scores, ov;
  P::allocate(scores, static_cast<std::size_t>(H) * R * R);
  Ly::scores_forward(tables.qkv(), R, R, P::data(scores));
  std::vector<Scalar> score_host(static_cast<std::size_t>(H) * R * R);
  P::download(scores, score_host.data());
  // OV: the logit table's u_h rows (tied) or the u_h rows through W_U (untied).
  std::vector<Scalar> ov_host(static_cast<std::size_t>(H) * R * V_out);
  if constexpr (Arch::tied && !Arch::has_mlp) {
    constexpr index_t Vp = kernels::padded_vocab<Shape, Scalar>;
    std::vector<Scalar> logit(tables.logit_buffer().size());
    P::download(tables.logit_buffer(), logit.data());
    for (index_t r = 0; r < H * R; ++r)
      std::copy_n(logit.data() + static_cast<std::size_t>(r) * Vp, V_out, ov_host.data() + static_cast<std::size_t>(r) * V_out);
  } else {
    P::allocate(ov, static_cast<std::size_t>(H) * R * V_out);
    const Scalar* w = net.parameter_data() + (Arch::tied ? Net::Layout::token_embedding : Net::Layout::unembed_W_U);
    if constexpr (Arch::tied)
      layers::matmul_forward_transposed<Backend>(P::data(ov), V_out, tables.z(), D, w, D, H * R, D, V_out);
    else
      layers::matmul_forward<Backend>(P::data(ov), V_out, tables.z(), D, w, V_out, H * R, D, V_out);
    P::download(ov, ov_host.data());
  }
  Circuits<Scalar> c;
  c.heads = H, c.rows = V * T, c.vocab = V, c.context = T, c.vocab_out = V_out;
  c.qk.resize(static_cast<std::size_t>(H) * c.rows * c.rows);
  c.ov.resize(static_cast<std::size_t>(H) * c.rows * V_out);
  for (index_t h = 0; h < H; ++h)
    for (index_t tq = 0; tq < T; ++tq)
      for (index_t vq = 0; vq < V; ++vq) {
        const index_t rq = space.row_of(vq, tq), out_q = c.row(vq, tq);
        for (index_t tk = 0; tk < T; ++tk)
          for (index_t vk = 0; vk < V; ++vk)
            c.qk[(static_cast<std::size_t>(h) * c.rows + out_q) * c.rows + c.row(vk, tk)] =
                score_host[(static_cast<std::size_t>(h) * R + rq) * R + space.row_of(vk, tk)];
        std::copy_n(ov_host.data() + (static_cast<std::size_t>(h) * R + rq) * V_out, V_out,
                    c.ov.data() + (static_cast<std::size_t>(h) * c.rows + out_q) * V_out);
      }
  return c;
}

template <class Net>
Circuits<typename Net::scalar_type> circuits_from_activations(const Net& net) {
  using Arch = typename Net::Architecture;
  using Scalar = typename Net::scalar_type;
  constexpr index_t V = Net::vocab, T = Net::context, H = Net::heads, V_out = Net::vocab_out, D = Net::d_model,
                    dh = Net::head_dim;
  const auto cache = net.inspect(every_row_batch(V, T), {"blocks.0.attn.hook_q", "blocks.0.attn.hook_k",
                                                         "blocks.0.attn.hook_v"});
  const auto& q = cache["blocks.0.attn.hook_q"].values;  // (V, T, H, dh): sample v, position t = row (v, t)
  const auto& k = cache["blocks.0.attn.hook_k"].values;
  const auto& v = cache["blocks.0.attn.hook_v"].values;
  const std::vector<Scalar> w_o = net.tensor("blocks.0.attn.W_O");  // (H, dh, D)
  std::vector<Scalar> w_u = Arch::tied ? std::vector<Scalar>{} : net.tensor("unembed.W_U");  // (D, V_out)
  const std::vector<Scalar> w_e = net.tensor("embed.W_E");
  Circuits<Scalar> c;
  c.heads = H, c.rows = V * T, c.vocab = V, c.context = T, c.vocab_out = V_out;
  c.qk.assign(static_cast<std::size_t>(H) * c.rows * c.rows, Scalar(0));
  c.ov.assign(static_cast<std::size_t>(H) * c.rows * V_out, Scalar(0));
  const auto at = [&](const std::vector<Scalar>& a, index_t token, index_t t, index_t h) {
    return a.data() + ((static_cast<std::size_t>(token) * T + t) * H + h) * dh;
  };
  std::vector<double> u(static_cast<std::size_t>(D));
  for (index_t h = 0; h < H; ++h)
    for (index_t t1 = 0; t1 < T; ++t1)
      for (index_t v1 = 0; v1 < V; ++v1) {
        const Scalar* qi = at(q, v1, t1, h);
        for (index_t t2 = 0; t2 < T; ++t2)
          for (index_t v2 = 0; v2 < V; ++v2) {
            const Scalar* kj = at(k, v2, t2, h);
            double s = 0;
            for (index_t e = 0; e < dh; ++e) s += static_cast<double>(qi[e]) * kj[e];
            c.qk[(static_cast<std::size_t>(h) * c.rows + c.row(v1, t1)) * c.rows + c.row(v2, t2)] = static_cast<Scalar>(s);
          }
        const Scalar* vi = at(v, v1, t1, h);
        std::fill(u.begin(), u.end(), 0.0);
        for (index_t e = 0; e < dh; ++e)
          for (index_t d = 0; d < D; ++d) u[static_cast<std::size_t>(d)] += static_cast<double>(vi[e]) * w_o[(static_cast<std::size_t>(h) * dh + e) * D + d];
        Scalar* out = c.ov.data() + (static_cast<std::size_t>(h) * c.rows + c.row(v1, t1)) * V_out;
        for (index_t o = 0; o < V_out; ++o) {
          double s = 0;
          for (index_t d = 0; d < D; ++d)
            s += u[static_cast<std::size_t>(d)] * (Arch::tied ? w_e[static_cast<std::size_t>(o) * D + d] : w_u[static_cast<std::size_t>(d) * V_out + o]);
          out[o] = static_cast<Scalar>(s);
        }
      }
  return c;
}

}  // namespace detail

// The QK and OV circuits of every head of a one-block model (see the top of this file).
template <class Net>
Circuits<typename Net::scalar_type> circuits(const Net& net, bool from_activations = false) {
  static_assert(Net::layers == 1, "tinyattn::circuits: defined for one-block models (a later block's input depends "
                                  "on more than its own row)");
  if constexpr (Net::has_table_engine) {
    if (!from_activations) return detail::circuits_from_tables(net);
  }
  return detail::circuits_from_activations(net);
}

}  // namespace tinyattn
