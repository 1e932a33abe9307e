// tinyattn/model/row_tables.hpp — the per-row tables of one RowSpace, computed from the parameters.
#pragma once

#include <vector>

#include "tinyattn/model/layers.hpp"
#include "tinyattn/model/row_space.hpp"

namespace tinyattn {

// Which way the logits are computed (both exact; they differ in cost, see preferred_logit_path):
//   logit_table  tabulate rows W_E^T per (head, row): ((H+1) R, V); each sample mixes H*T+1 rows of V.
//                Per-row logits are the "OV circuit" (and direct path) that interpretability studies.
//   direct       each sample mixes H*T+1 rows of D into its residual stream, then one (N, D) x (D, V)
//                product gives the logits.
enum class LogitPath { automatic, logit_table, direct };

// Cost per sample and training step, in multiply-add equivalents: the logit table mixes H*T rows of V
// three times (forward, backward dots, scatter); the direct path does three (N, D) x (D, V) products
// and H*T rows of D three times, plus ~24 V for materializing logits and their gradient in memory
// (calibrated on the reference machine: at D = 32, H = 2 and at D = 8, H = 4 the table is 1.4-1.5x
// faster, which the bare multiply-add count gets wrong for the second). Picked at compile time.
template <class Shape>
constexpr LogitPath preferred_logit_path() {
  constexpr long table = 3L * Shape::heads * Shape::context * Shape::vocab;
  constexpr long direct =
      3L * Shape::d_model * Shape::vocab + 3L * Shape::heads * Shape::context * Shape::d_model + 24L * Shape::vocab;
  return table < direct ? LogitPath::logit_table : LogitPath::direct;
}

template <class Shape>
constexpr LogitPath resolve(LogitPath path) {
  return path == LogitPath::automatic ? preferred_logit_path<Shape>() : path;
}

// How a sample gets its attention scores (both exact):
//   table       score (H, Rq, R): every query row against every row, by one product per head; a sample
//               looks up its H*T scores. Pays when there are few distinct last tokens (the min/max
//               task has one: '=').
//   per_sample  each sample computes q . k for its H*T keys from the QKV table.
enum class ScorePath { automatic, table, per_sample };

// The table costs Rq * R dot products per pass against samples * T per-sample ones (per head).
inline ScorePath resolve(ScorePath path, const RowSpace& space, std::int64_t samples_per_pass) {
  if (path != ScorePath::automatic) return path;
  const std::int64_t table = static_cast<std::int64_t>(space.query_rows()) * space.size();
  return table <= samples_per_pass * space.context() ? ScorePath::table : ScorePath::per_sample;
}

// The logit table rebased on each sample's query row q (its last row): a head's pattern sums to 1, so
//   logits = base[q] + sum_h sum_k p_hk OV_h[r_k]
//          = (base[q] + sum_h OV_h[q]) + sum_h sum_{k < T-1} p_hk (OV_h[r_k] - OV_h[q])
// exactly: 1 + H (T-1) rows per sample instead of 1 + H T (7 instead of 9 for the reference), and the
// backward drops the query slot too (adding a constant to a head's d pattern leaves the softmax's
// backward unchanged, and the query slot's rebased row is zero). The rebased table has
// Rq + H Rq (R - Rq) rows: it pays when few rows are queries (the min/max task has one, '='), and
// is used when it has at most twice the logit table's rows (a table that stays in cache, computed
// once per step), on backends that ask for it (Primitives<B>::kRebaseLogits).
template <class Shape, class Backend>
bool rebase_logits(const RowSpace& space) {
  if constexpr (!Primitives<Backend>::kRebaseLogits || Shape::context < 2) {
    (void)space;
    return false;
  } else {
    const std::int64_t R = space.size(), Rq = space.query_rows(), H = Shape::heads;
    return Rq > 0 && kernels::rebased_table_rows<Shape>(R, Rq) <= 2 * (H + 1) * R;
  }
}

inline const char* to_string(ScorePath path) {
  switch (path) {
    case ScorePath::automatic:
      return "automatic";
    case ScorePath::table:
      return "table";
    case ScorePath::per_sample:
      return "per_sample";
  }
  return "?";
}

inline const char* to_string(LogitPath path) {
  switch (path) {
    case LogitPath::automatic:
      return "automatic";
    case LogitPath::logit_table:
      return "logit_table";
    case LogitPath::direct:
      return "direct";
  }
  return "?";
}

template <class Shape, class Backend, class Scalar>
class RowTables {
  using P = Primitives<Backend>;
  using Ly = Layers<Shape, Backend, Scalar>;
  template <class T>
  using buffer = typename P::template buffer<T>;
  static constexpr index_t D = Shape::d_model, H = Shape::heads, dh = Shape::head_dim,
                           Vp = kernels::padded_vocab<Shape, Scalar>;

 public:
  RowTables(const RowSpace& space, bool with_logit_table, bool with_score_table)
      : rows_(space.size()),
        query_rows_(space.query_rows()),
        with_logits_(with_logit_table),
        with_scores_(with_score_table) {
    P::upload(row_token_, space.row_token().data(), space.row_token().size());
    P::upload(row_position_, space.row_position().data(), space.row_position().size());
    P::allocate(z_, static_cast<std::size_t>(H + 1) * rows_ * D);
    P::allocate(qkv_, static_cast<std::size_t>(3) * H * rows_ * dh);
    if (with_logits_) P::allocate(logit_, static_cast<std::size_t>(H + 1) * rows_ * Vp);
    rebased_ = with_logits_ && rebase_logits<Shape, Backend>(space);
    if (rebased_)
      P::allocate(rebased_logit_,
                  static_cast<std::size_t>(kernels::rebased_table_rows<Shape>(rows_, query_rows_)) * Vp);
    if (with_scores_) P::allocate(score_, static_cast<std::size_t>(H) * query_rows_ * rows_);
  }

  // Forward of every per-row layer from the parameters.
  void compute(const Scalar* params) {
    Ly::embedding_forward(params, P::data(row_token_), P::data(row_position_), rows_, x());
    Ly::projection_forward(params, x(), rows_, P::data(qkv_));
    Ly::output_forward(params, P::data(qkv_), rows_, P::data(z_));
    // The base rows (x W_E^T) are read for the query rows only: the others are not computed (zero).
    if (with_logits_) Ly::unembedding_forward(params, P::data(z_), logit_rows(), P::data(logit_));
    if (rebased_) Ly::rebase_forward(P::data(logit_), rows_, query_rows_, P::data(rebased_logit_));
    if (with_scores_) Ly::scores_forward(P::data(qkv_), rows_, query_rows_, P::data(score_));
  }

  index_t rows() const { return rows_; }
  index_t query_rows() const { return query_rows_; }
  bool has_logit_table() const { return with_logits_; }
  bool has_score_table() const { return with_scores_; }
  const index_t* row_token() const { return P::data(row_token_); }
  const index_t* row_position() const { return P::data(row_position_); }
  Scalar* z() { return P::data(z_); }  // (H+1, R, D): u then x
  const Scalar* z() const { return P::data(z_); }
  Scalar* x() { return P::data(z_) + static_cast<std::ptrdiff_t>(H) * rows_ * D; }  // (R, D)
  const Scalar* x() const { return P::data(z_) + static_cast<std::ptrdiff_t>(H) * rows_ * D; }
  const Scalar* qkv() const { return P::data(qkv_); }  // (3, H, R, dh)
  // ((H+1) R, Vp): OV_h rows h R + r, then base rows H R + r, computed for the first logit_rows() rows
  const Scalar* logit() const { return P::data(logit_); }
  index_t logit_rows() const { return H * rows_ + query_rows_; }
  // (Rq + H Rq (R - Rq), Vp), or null when not rebased (see rebase_logits)
  const Scalar* rebased_logit() const { return rebased_ ? P::data(rebased_logit_) : nullptr; }
  const Scalar* score() const { return with_scores_ ? P::data(score_) : nullptr; }  // (H, Rq, R)
  const buffer<Scalar>& z_buffer() const { return z_; }
  const buffer<Scalar>& qkv_buffer() const { return qkv_; }
  const buffer<Scalar>& logit_buffer() const { return logit_; }

 private:
  index_t rows_, query_rows_;
  bool with_logits_, with_scores_, rebased_ = false;
  buffer<index_t> row_token_, row_position_;
  buffer<Scalar> z_, qkv_, logit_, score_, rebased_logit_;
};

}  // namespace tinyattn
