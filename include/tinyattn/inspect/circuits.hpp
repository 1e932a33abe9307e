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

#include <optional>
#include <string>
#include <type_traits>
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
  const Scalar* ov_row(index_t h, index_t k_row) const {
    return ov.data() + (static_cast<std::size_t>(h) * rows + k_row) * vocab_out;
  }
};

// A batch whose rows cover every (token, position) pair: sample v holds token v at every position.
inline TokenBatch every_row_batch(index_t vocab, index_t context) {
  TokenBatch batch;
  batch.context = context;
  for (index_t v = 0; v < vocab; ++v)
    for (index_t t = 0; t < context; ++t) batch.tokens.push_back(v);
  return batch;
}

// The QK circuit's entries of chosen query rows: qk[h][query_rows[i]][k_row] for every key row k_row,
// without the rest of the circuits: each entry one dot product of the query row's q and the key row's k
// (see qk_circuit_rows below). Rows are numbered as in Circuits (row = position * V + token).
template <class Scalar>
struct QueryRowScores {
  index_t heads = 0, rows = 0, vocab = 0, context = 0;
  std::vector<index_t> query_rows;
  std::vector<Scalar> qk;  // (H, query_rows.size(), rows)
  index_t row(index_t token, index_t position) const { return position * vocab + token; }
  // The scores of the i-th chosen query row against every key row, by key row.
  const Scalar* scores(index_t h, index_t i) const {
    return qk.data() + (static_cast<std::size_t>(h) * query_rows.size() + static_cast<std::size_t>(i)) * rows;
  }
};

namespace detail {

inline RowSpace every_row_space(index_t vocab, index_t context) {
  const TokenBatch all = every_row_batch(vocab, context);
  return RowSpace(vocab, context, {std::cref(all)});
}

template <class Net>
using RowTablesOf = RowTables<typename Net::Shape, typename Net::backend_type, typename Net::scalar_type>;

// The engine's tables of every (token, position) row, and its score table of every row against every
// row: the scores layer with all rows as queries, (H, R, R) in RowSpace order.
template <class Net>
struct EveryRowTables {
  using P = Primitives<typename Net::backend_type>;
  using Scalar = typename Net::scalar_type;

  EveryRowTables(const Net& net, bool with_logit_table)
      : space(every_row_space(Net::vocab, Net::context)), tables(space, with_logit_table, false) {
    tables.compute(net.parameter_data());
    const index_t R = space.size();
    P::allocate(scores, static_cast<std::size_t>(Net::heads) * R * R);
    Layers<typename Net::Shape, typename Net::backend_type, Scalar>::scores_forward(tables.qkv(), R, R,
                                                                                    P::data(scores));
  }

  RowSpace space;
  RowTablesOf<Net> tables;
  typename P::template buffer<Scalar> scores;
};

// One query row's scores against every key row, from RowSpace order into Circuits' row order.
template <class Scalar>
void scores_in_circuit_order(const RowSpace& space, const Scalar* by_space_row, Scalar* by_circuit_row) {
  for (index_t t = 0; t < space.context(); ++t)
    for (index_t v = 0; v < space.vocab(); ++v)
      by_circuit_row[t * space.vocab() + v] = by_space_row[space.row_of(v, t)];
}

// A QK entry on the activations path: q . k of a query row and a key row of one head, summed in double.
template <class Scalar>
Scalar activation_score(const Scalar* q, const Scalar* k, index_t head_dim) {
  double s = 0;
  for (index_t e = 0; e < head_dim; ++e) s += static_cast<double>(q[e]) * k[e];
  return static_cast<Scalar>(s);
}

// The queries and keys of every row (hook_q, hook_k: sample v, position t = row (v, t)), and the values
// when `with_values`, from the reference engine.
template <class Net>
ActivationCache<typename Net::scalar_type> every_row_activations(const Net& net, bool with_values) {
  std::vector<std::string> names{"blocks.0.attn.hook_q", "blocks.0.attn.hook_k"};
  if (with_values) names.push_back("blocks.0.attn.hook_v");
  return net.inspect(every_row_batch(Net::vocab, Net::context), names);
}

template <class Net>
Circuits<typename Net::scalar_type> circuits_from_tables(const Net& net) {
  using Shape = typename Net::Shape;
  using Arch = typename Net::Architecture;
  using Backend = typename Net::backend_type;
  using Scalar = typename Net::scalar_type;
  using P = Primitives<Backend>;
  constexpr index_t V = Net::vocab, T = Net::context, H = Net::heads, V_out = Net::vocab_out, D = Net::d_model;
  const EveryRowTables<Net> every(net, /*with_logit_table=*/Arch::tied && !Arch::has_mlp);
  const RowSpace& space = every.space;
  const auto& tables = every.tables;
  const index_t R = space.size();
  std::vector<Scalar> score_host(static_cast<std::size_t>(H) * R * R);
  P::download(every.scores, score_host.data());
  // OV: the logit table's u_h rows (tied) or the u_h rows through W_U (untied).
  typename P::template buffer<Scalar> ov;
  std::vector<Scalar> ov_host(static_cast<std::size_t>(H) * R * V_out);
  if constexpr (Arch::tied && !Arch::has_mlp) {
    constexpr index_t Vp = kernels::padded_vocab<Shape, Scalar>;
    std::vector<Scalar> logit(tables.logit_buffer().size());
    P::download(tables.logit_buffer(), logit.data());
    for (index_t r = 0; r < H * R; ++r)
      std::copy_n(logit.data() + static_cast<std::size_t>(r) * Vp, V_out,
                  ov_host.data() + static_cast<std::size_t>(r) * V_out);
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
        scores_in_circuit_order(space, score_host.data() + (static_cast<std::size_t>(h) * R + rq) * R,
                                c.qk.data() + (static_cast<std::size_t>(h) * c.rows + out_q) * c.rows);
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
  const auto cache = every_row_activations(net, /*with_values=*/true);
  const auto& q = cache["blocks.0.attn.hook_q"].values;  // (V, T, H, dh): sample v, position t = row (v, t)
  const auto& k = cache["blocks.0.attn.hook_k"].values;
  const auto& v = cache["blocks.0.attn.hook_v"].values;
  const std::vector<Scalar> w_o = net.tensor("blocks.0.attn.W_O");                           // (H, dh, D)
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
          for (index_t v2 = 0; v2 < V; ++v2)
            c.qk[(static_cast<std::size_t>(h) * c.rows + c.row(v1, t1)) * c.rows + c.row(v2, t2)] =
                activation_score(qi, at(k, v2, t2, h), dh);
        const Scalar* vi = at(v, v1, t1, h);
        std::fill(u.begin(), u.end(), 0.0);
        for (index_t e = 0; e < dh; ++e)
          for (index_t d = 0; d < D; ++d)
            u[static_cast<std::size_t>(d)] +=
                static_cast<double>(vi[e]) * w_o[(static_cast<std::size_t>(h) * dh + e) * D + d];
        Scalar* out = c.ov.data() + (static_cast<std::size_t>(h) * c.rows + c.row(v1, t1)) * V_out;
        for (index_t o = 0; o < V_out; ++o) {
          double s = 0;
          for (index_t d = 0; d < D; ++d)
            s += u[static_cast<std::size_t>(d)] *
                 (Arch::tied ? w_e[static_cast<std::size_t>(o) * D + d] : w_u[static_cast<std::size_t>(d) * V_out + o]);
          out[o] = static_cast<Scalar>(s);
        }
      }
  return c;
}

}  // namespace detail

// The QK and OV circuits of every head of a one-block model (see the top of this file).
template <class Net>
Circuits<typename Net::scalar_type> circuits(const Net& net, bool from_activations = false) {
  static_assert(Net::layers == 1,
                "tinyattn::circuits: defined for one-block models (a later block's input depends "
                "on more than its own row)");
  if constexpr (Net::has_table_engine) {
    if (!from_activations) return detail::circuits_from_tables(net);
  }
  return detail::circuits_from_activations(net);
}

// The QK circuit's entries of the given query rows against every key row (QueryRowScores), at a fraction
// of circuits()'s cost: no OV circuit, and only the wanted rows' scores, each q . k summed in double
// (activation_score) from the q and k rows of the same source as circuits(net, from_activations). From
// the activations these are circuits()'s entries bit for bit (it computes them the same way); from the
// tables they equal circuits()'s to within the rounding of one dot product in Scalar, which circuits()
// takes from the engine's score table, a matrix product over all rows.
//
//   tinyattn::QueryRowCircuit<Net> rows(query_rows);   // once
//   const auto& s = rows.compute(net);                 // after every change of the parameters
//
// What does not depend on the parameters (the tables' rows and buffers) is made once, for a training
// run that asks again and again (inspect/training_snapshots.hpp). requires: every row in [0, V * T).
template <class Net>
class QueryRowCircuit {
  using Scalar = typename Net::scalar_type;
  using P = Primitives<typename Net::backend_type>;
  static constexpr index_t V = Net::vocab, T = Net::context, H = Net::heads, dh = Net::head_dim;
  static constexpr bool kFromTablesPossible = Net::has_table_engine;
  struct NoTables {};
  using Tables = std::conditional_t<kFromTablesPossible, detail::RowTablesOf<Net>, NoTables>;

 public:
  explicit QueryRowCircuit(std::vector<index_t> query_rows, bool from_activations = false)
      : from_tables_(kFromTablesPossible && !from_activations) {
    static_assert(Net::layers == 1,
                  "tinyattn::QueryRowCircuit: defined for one-block models (a later block's "
                  "input depends on more than its own row)");
    for (const index_t row : query_rows)
      require(row >= 0 && row < V * T, "tinyattn::qk_circuit_rows: query row ", row, " outside [0, ", V * T, ")");
    s_.heads = H, s_.rows = V * T, s_.vocab = V, s_.context = T, s_.query_rows = std::move(query_rows);
    s_.qk.resize(static_cast<std::size_t>(H) * s_.query_rows.size() * s_.rows);
    if constexpr (kFromTablesPossible) {
      if (from_tables_) {
        const RowSpace space = detail::every_row_space(V, T);
        tables_.emplace(space, /*with_logit_table=*/false, /*with_score_table=*/false);
        qkv_.resize(static_cast<std::size_t>(3) * H * space.size() * dh);
        space_row_.resize(static_cast<std::size_t>(V) * T);
        for (index_t row = 0; row < V * T; ++row)
          space_row_[static_cast<std::size_t>(row)] = space.row_of(row % V, row / V);
      }
    }
  }

  // The scores for net's current parameters (valid until the next compute()).
  const QueryRowScores<Scalar>& compute(const Net& net) {
    if constexpr (kFromTablesPossible) {
      if (from_tables_) {
        tables_->compute(net.parameter_data());
        P::copy_to_host(tables_->qkv(), qkv_.data(), qkv_.size());
        const index_t R = tables_->rows();
        fill([&](index_t block, index_t h, index_t row) {  // qkv: (3, H, R, dh), queries then keys
          return qkv_.data() +
                 ((static_cast<std::size_t>(block) * H + h) * R + space_row_[static_cast<std::size_t>(row)]) * dh;
        });
        return s_;
      }
    }
    const auto cache = detail::every_row_activations(net, /*with_values=*/false);
    const auto& q = cache["blocks.0.attn.hook_q"].values;  // (V, T, H, dh): sample v, position t = row (v, t)
    const auto& k = cache["blocks.0.attn.hook_k"].values;
    fill([&](index_t block, index_t h, index_t row) {
      return (block == 0 ? q : k).data() + ((static_cast<std::size_t>(row % V) * T + row / V) * H + h) * dh;
    });
    return s_;
  }

 private:
  // s_.qk from the q (block 0) and k (block 1) rows that `at(block, h, row)` points at.
  template <class At>
  void fill(const At& at) {
    const auto Q = static_cast<index_t>(s_.query_rows.size());
    for (index_t h = 0; h < H; ++h)
      for (index_t i = 0; i < Q; ++i) {
        Scalar* out = s_.qk.data() + (static_cast<std::size_t>(h) * Q + i) * s_.rows;
        const Scalar* q = at(0, h, s_.query_rows[static_cast<std::size_t>(i)]);
        for (index_t key = 0; key < s_.rows; ++key) out[key] = detail::activation_score(q, at(1, h, key), dh);
      }
  }

  bool from_tables_;
  QueryRowScores<Scalar> s_;
  std::optional<Tables> tables_;
  std::vector<Scalar> qkv_;
  std::vector<index_t> space_row_;  // RowSpace row of each circuit row
};

// QueryRowCircuit's scores once (see above).
template <class Net>
QueryRowScores<typename Net::scalar_type> qk_circuit_rows(const Net& net, std::vector<index_t> query_rows,
                                                          bool from_activations = false) {
  return QueryRowCircuit<Net>(std::move(query_rows), from_activations).compute(net);
}

}  // namespace tinyattn
