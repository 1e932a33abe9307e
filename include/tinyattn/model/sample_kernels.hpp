// tinyattn/model/sample_kernels.hpp — the per-sample half of the network, written once for every
// backend: small TINYATTN_HD functions composed into functors that Primitives<B>::for_each_team runs
// with one team per sample (one vectorized thread on a CPU, one warp on a GPU; see ops/row_ops.hpp).
// Rows of width V or D are held in shares; the small per-sample attention (H*T scores) is computed by
// every team member alike, and member 0 writes it out.
//
// Every sample reads the per-row tables (tinyattn/model/layers.hpp) through its row indices:
//   kv_row  (N, T)      row of (token_t, t) for each position t
//   mix_row (N, J)      J = H*T + 1 table rows whose weighted sum is the sample's output:
//                       slot h*T + k -> head h's row for key k (weight: pattern[h, k]),
//                       slot H*T     -> the residual row of the last token (weight: 1)
//   mix_w   (N, J)      those weights: the attention pattern of the last query, then 1
//
// The loss reads only the last position, and in a one-layer network nothing at another query position
// reaches it, so training needs the query at position T-1 only (keys and values at all positions).
#pragma once

#include "tinyattn/core/config.hpp"
#include "tinyattn/core/math.hpp"
#include "tinyattn/ops/row_ops.hpp"

namespace tinyattn::kernels {

// The tables a sample's attention reads: QKV (3, H, R, dh) — query, key and value projections of every
// distinct row — and, when present, the score table (H, Rq, R): q . k of every query row (rows
// [0, Rq) are the rows at position T-1) with every row.
template <class Shape, class Scalar>
struct QkvTable {
  const Scalar* data;
  index_t rows;                   // R
  const Scalar* score = nullptr;  // (H, Rq, R) or null: compute q . k per sample
  index_t query_rows = 0;         // Rq
  TINYATTN_HD const Scalar* query(index_t head, index_t row) const { return at(0, head, row); }
  TINYATTN_HD const Scalar* key(index_t head, index_t row) const { return at(1, head, row); }
  TINYATTN_HD const Scalar* value(index_t head, index_t row) const { return at(2, head, row); }
  TINYATTN_HD const Scalar* at(index_t which, index_t head, index_t row) const {
    return data + ((static_cast<std::ptrdiff_t>(which) * Shape::heads + head) * rows + row) * Shape::head_dim;
  }
  // Scores of query row `query_row` (< Rq) against all rows, head h: (R).
  TINYATTN_HD const Scalar* scores_of(index_t head, index_t query_row) const {
    return score + (static_cast<std::ptrdiff_t>(head) * query_rows + query_row) * rows;
  }
};

// Rows of V logits are stored with V rounded up to whole 64-byte vectors (131 -> 144 floats), the pad
// columns zero: every loop over a logits row then runs in full vectors, with no scalar remainder.
template <class Scalar>
inline constexpr index_t vector_lanes = 64 / static_cast<index_t>(sizeof(Scalar));
template <class Shape, class Scalar>
inline constexpr index_t padded_vocab =
    (Shape::vocab + vector_lanes<Scalar> - 1) / vector_lanes<Scalar>* vector_lanes<Scalar>;

// Softmax over n scores times `scale` (1/sqrt(head_dim)), as torch's (s / sqrt(dh)).softmax(-1) (the
// same numbers when head_dim is a power of 4, as in the reference; within an ulp otherwise).
template <class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE void softmax_scaled(const Scalar* scores, Scalar scale, index_t n, Scalar* out) {
  Scalar top = scores[0] * scale;
  for (index_t i = 1; i < n; ++i) top = scores[i] * scale > top ? scores[i] * scale : top;
  Scalar total = 0;
  for (index_t i = 0; i < n; ++i) {
    out[i] = math::exp(scores[i] * scale - top);
    total += out[i];
  }
  for (index_t i = 0; i < n; ++i) out[i] /= total;
}

// ---- attention of the last query ----------------------------------------------------------------------
// scores[h, k] = q_h(T-1) . k_h(k) (unscaled, as the notebook plots them); pattern = softmax(scores/sqrt(dh))
// as torch: exp(s - max) / sum. Scores come from the score table (kScoreTable) or from q . k; writes
// pattern (H, T) and, without a score table, q (H, dh) when q_out is non-null (the backward needs it).
// Plain scalar code on purpose: one thread per sample, so that the CPU backend's for_each_simd runs
// 16 samples in the lanes of one vector (the table lookups become gathers with 32-bit indices: every
// table has fewer than 2^31 entries). The per-sample kernels of a device call it for their own sample.
template <class Shape, class Scalar, bool kScoreTable>
TINYATTN_HD TINYATTN_FORCEINLINE void attend_last_query(const QkvTable<Shape, Scalar>& qkv, const index_t* kv_row,
                                                        Scalar* pattern, Scalar* q_out) {
  constexpr index_t H = Shape::heads, T = Shape::context, dh = Shape::head_dim;
  constexpr Scalar scale = math::inverse_sqrt<Scalar, dh>;
  const index_t query_row = kv_row[T - 1];
  TINYATTN_UNROLL
  for (index_t h = 0; h < H; ++h) {
    Scalar s[T];
    TINYATTN_UNROLL
    for (index_t k = 0; k < T; ++k) {
      if constexpr (kScoreTable) {
        s[k] = qkv.score[(h * qkv.query_rows + query_row) * qkv.rows + kv_row[k]] * scale;
      } else {
        s[k] = GenericRowOps<1>::dot<dh>(qkv.query(h, query_row), qkv.key(h, kv_row[k])) * scale;
      }
    }
    Scalar top = s[0];
    TINYATTN_UNROLL
    for (index_t k = 1; k < T; ++k) top = s[k] > top ? s[k] : top;
    Scalar e[T], total = 0;
    TINYATTN_UNROLL
    for (index_t k = 0; k < T; ++k) {
      e[k] = math::exp(s[k] - top);
      total += e[k];
    }
    TINYATTN_UNROLL
    for (index_t k = 0; k < T; ++k) pattern[h * T + k] = e[k] / total;
    if constexpr (!kScoreTable) {
      if (q_out) {
        const Scalar* q = qkv.query(h, query_row);
        for (index_t i = 0; i < dh; ++i) q_out[h * dh + i] = q[i];
      }
    }
  }
}

// The mixing weights of sample b, (J): the attention pattern of the last query, then 1 (the residual
// row); q (H, dh) too when non-null (per-sample score path only).
template <class Shape, class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE void mixing_weights(const QkvTable<Shape, Scalar>& qkv, const index_t* kv_row_b,
                                                     Scalar* w, Scalar* q_out) {
  if (qkv.score)
    attend_last_query<Shape, Scalar, true>(qkv, kv_row_b, w, q_out);
  else
    attend_last_query<Shape, Scalar, false>(qkv, kv_row_b, w, q_out);
  w[Shape::heads * Shape::context] = Scalar(1);
}

// Backward of attend_last_query. dpattern (H, T) in; writes dscores (H, T) = d loss / d scores and,
// without a score table, dq (H, dh) = d loss / d q. Softmax backward: ds = p * (dp - sum(p * dp)) / sqrt(dh).

template <class Shape, class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE void attend_last_query_backward(const QkvTable<Shape, Scalar>& qkv,
                                                                 const index_t* kv_row, const Scalar* pattern,
                                                                 const Scalar* dpattern, Scalar* dscores, Scalar* dq) {
  constexpr index_t H = Shape::heads, T = Shape::context, dh = Shape::head_dim;
  constexpr Scalar scale = math::inverse_sqrt<Scalar, dh>;
  for (index_t h = 0; h < H; ++h) {
    const Scalar* p = pattern + h * T;
    const Scalar* dp = dpattern + h * T;
    Scalar inner = 0;
    for (index_t k = 0; k < T; ++k) inner += p[k] * dp[k];
    for (index_t k = 0; k < T; ++k) dscores[h * T + k] = p[k] * (dp[k] - inner) * scale;
    if (qkv.score) continue;  // the score table's backward turns dscores into dq and dk
    Scalar* dq_h = dq + h * dh;
    for (index_t e = 0; e < dh; ++e) dq_h[e] = 0;
    for (index_t k = 0; k < T; ++k) {
      const Scalar* key = qkv.key(h, kv_row[k]);
      const Scalar ds = dscores[h * T + k];
      for (index_t e = 0; e < dh; ++e) dq_h[e] += ds * key[e];
    }
  }
}

// ---- mixing table rows -----------------------------------------------------------------------------------
// The J table rows of one sample, (Width) each.
template <index_t Width, index_t J, class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE void table_rows(const Scalar* table, const index_t* row, const Scalar** rows) {
  for (index_t j = 0; j < J; ++j) rows[j] = table + static_cast<std::ptrdiff_t>(row[j]) * Width;
}

// ---- functors: one call per sample ---------------------------------------------------------------------------
// Runs a per-sample functor on the samples [first, first + count) of a batch: for_each(count, ...).
template <class F>
struct OffsetBy {
  F f;
  index_t first;
  TINYATTN_HD void operator()(index_t i, Team team) const { f(first + i, team); }
};
template <class F>
OffsetBy<F> offset_by(const F& f, index_t first) {
  return {f, first};
}

// Shared inputs of every per-sample functor.
template <class Shape, class Scalar>
struct SampleInputs {
  QkvTable<Shape, Scalar> qkv;
  const index_t* kv_row;   // (N, T)
  const index_t* mix_row;  // (N, J)
  const index_t* targets;  // (N)
  // (N, J) mixing weights computed beforehand by AttendLastQuery (then they are not stored again),
  // or null: every sample's kernel attends itself (one launch fewer; see Primitives::kAttendFirst).
  const Scalar* weights = nullptr;
  // (N, J2) rows of the rebased logit table (model/row_tables.hpp: slot h*(T-1) + k -> head h's
  // rebased row for key k < T-1, slot J2 - 1 -> the query's combined row), or null when not rebased.
  const index_t* rebased_row = nullptr;
};

template <class Shape>
inline constexpr index_t mix_slots = Shape::heads* Shape::context + 1;  // J
template <class Shape>
inline constexpr index_t rebased_slots = Shape::heads*(Shape::context - 1) + 1;  // J2

// The rebased logit table (model/row_tables.hpp) of a row space with R rows, the first Rq of them
// queries: row q < Rq is query q's combined row; head h's difference row for query q and key row
// `key` (>= Rq) comes after them, (h, q, key) in row-major order.
template <class Shape>
TINYATTN_HD constexpr index_t rebased_table_rows(index_t rows, index_t query_rows) {
  return query_rows + Shape::heads * query_rows * (rows - query_rows);
}
TINYATTN_HD constexpr index_t rebased_difference_row(index_t head, index_t query, index_t key, index_t rows,
                                                     index_t query_rows) {
  return query_rows + (head * query_rows + query) * (rows - query_rows) + key - query_rows;
}

// The mixing weights (and q, per-sample score path) of every sample, one thread each: the first step
// of a pass on backends that attend first (Primitives<B>::kAttendFirst, run by for_each_simd).
template <class Shape, class Scalar, bool kScoreTable>
struct AttendLastQuery {
  QkvTable<Shape, Scalar> qkv;
  const index_t* kv_row;  // (N, T)
  Scalar* mix_w;          // (N, J)
  Scalar* q;              // (N, H, dh) or null
  TINYATTN_HD void operator()(index_t b) const {
    constexpr index_t H = Shape::heads, T = Shape::context, J = mix_slots<Shape>, dh = Shape::head_dim;
    Scalar* w = mix_w + static_cast<std::ptrdiff_t>(b) * J;
    attend_last_query<Shape, Scalar, kScoreTable>(qkv, kv_row + static_cast<std::ptrdiff_t>(b) * T, w,
                                                  q ? q + static_cast<std::ptrdiff_t>(b) * H * dh : nullptr);
    w[J - 1] = Scalar(1);
  }
};

// The mixing weights of sample b into w (J), complete on every member: read from in.weights when the
// pass attended first, else computed here (q (H, dh) then written by member 0 when non-null).
template <class Shape, class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE void sample_weights(const SampleInputs<Shape, Scalar>& in, index_t b, Scalar* w,
                                                     Scalar* q, Team team) {
  constexpr index_t T = Shape::context, J = mix_slots<Shape>;
  if (in.weights) {  // computed beforehand for the whole batch (AttendLastQuery)
    for (index_t j = 0; j < J; ++j) w[j] = in.weights[static_cast<std::ptrdiff_t>(b) * J + j];
  } else {
    mixing_weights<Shape>(in.qkv, in.kv_row + static_cast<std::ptrdiff_t>(b) * T, w, team.lane == 0 ? q : nullptr);
  }
}

// One sample's forward up to the mixed rows: the mixing weights w (J, see sample_weights) and the
// member's share of out (Width) = sum_j w_j table[row_j]. OV path: table = per-row logits (Width =
// Vp); direct path: table = per-row residual terms (Width = D). With `rebased` (the rebased logit
// table, Width = Vp) the J2 rebased rows are mixed instead, weighted by the non-query pattern and 1.
template <class Shape, class Scalar, index_t Width, class RowOps>
TINYATTN_HD TINYATTN_FORCEINLINE void attend_and_mix(const SampleInputs<Shape, Scalar>& in, const Scalar* table,
                                                     const Scalar* rebased, index_t b, Scalar* w, Scalar* q,
                                                     Scalar* out, Team team) {
  constexpr index_t H = Shape::heads, T = Shape::context, J = mix_slots<Shape>;
  sample_weights<Shape>(in, b, w, q, team);
  if (rebased) {
    constexpr index_t J2 = rebased_slots<Shape>;
    Scalar w2[J2];
    for (index_t h = 0; h < H; ++h)
      for (index_t k = 0; k + 1 < T; ++k) w2[h * (T - 1) + k] = w[h * T + k];
    w2[J2 - 1] = Scalar(1);
    const Scalar* rows[J2];
    table_rows<Width, J2>(rebased, in.rebased_row + static_cast<std::ptrdiff_t>(b) * J2, rows);
    RowOps::template mix<Width, J2>(rows, w2, out, team);
    return;
  }
  const Scalar* rows[J];
  table_rows<Width, J>(table, in.mix_row + static_cast<std::ptrdiff_t>(b) * J, rows);
  RowOps::template mix<Width, J>(rows, w, out, team);
}

// From d pattern (H, T) of sample b, complete on every member, through the softmax to the scores and
// the query. Member 0 writes dscores (H, T) and dq (H, dh, null with a score table).
template <class Shape, class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE void pattern_backward(const SampleInputs<Shape, Scalar>& in, index_t b,
                                                       const Scalar* w, const Scalar* dpattern, Scalar* dscores,
                                                       Scalar* dq, Team team) {
  constexpr index_t H = Shape::heads, T = Shape::context, HT = H * T, dh = Shape::head_dim;
  Scalar ds[HT], dq_local[H * dh];
  attend_last_query_backward<Shape>(in.qkv, in.kv_row + static_cast<std::ptrdiff_t>(b) * T, w, dpattern, ds,
                                    dq ? dq_local : nullptr);
  if (team.lane != 0) return;
  for (index_t i = 0; i < HT; ++i) dscores[i] = ds[i];
  if (dq)
    for (index_t i = 0; i < H * dh; ++i) dq[i] = dq_local[i];
}

// Backward of attend_and_mix for sample b, given the member's share of g = d loss / d out: the
// attention weights' gradient through the table rows (d pattern[h, k] = g . row of slot (h, k); when
// rebased, g . rebased row for k < T-1 and 0 for the query slot: the same up to a constant per head,
// which the softmax's backward ignores), then through the softmax to the scores and the query.
// Member 0 writes dscores (H, T) and dq (H, dh, null with a score table). (The table rows' own
// gradients are scattered afterwards by a ScatterPlan, over the logit table's rows.)
template <class Shape, class Scalar, index_t Width, class RowOps>
TINYATTN_HD TINYATTN_FORCEINLINE void attend_and_mix_backward(const SampleInputs<Shape, Scalar>& in,
                                                              const Scalar* table, const Scalar* rebased, index_t b,
                                                              const Scalar* w, const Scalar* g, Scalar* dscores,
                                                              Scalar* dq, Team team) {
  constexpr index_t H = Shape::heads, T = Shape::context, J = mix_slots<Shape>, HT = J - 1;
  Scalar dpattern[HT];
  if (rebased) {
    constexpr index_t J2 = rebased_slots<Shape>, K = J2 - 1;
    const Scalar* rows[J2];
    table_rows<Width, J2>(rebased, in.rebased_row + static_cast<std::ptrdiff_t>(b) * J2, rows);
    Scalar d2[K > 0 ? K : 1];
    RowOps::template dots<Width, K>(g, rows, d2, team);
    for (index_t h = 0; h < H; ++h)
      for (index_t k = 0; k < T; ++k) dpattern[h * T + k] = k + 1 < T ? d2[h * (T - 1) + k] : Scalar(0);
  } else {
    const Scalar* rows[J];
    table_rows<Width, J>(table, in.mix_row + static_cast<std::ptrdiff_t>(b) * J, rows);
    RowOps::template dots<Width, HT>(g, rows, dpattern, team);
  }
  pattern_backward<Shape>(in, b, w, dpattern, dscores, dq, team);
}

// Per-sample buffers of a training batch, row pointers for sample b.
template <class Shape, class Scalar>
struct SampleGradients {
  Scalar* mix_w;    // (N, J)
  Scalar* q;        // (N, H, dh), null with a score table
  Scalar* dscores;  // (N, H, T)
  Scalar* dq;       // (N, H, dh), null with a score table
  TINYATTN_HD Scalar* w(index_t b) const { return mix_w + static_cast<std::ptrdiff_t>(b) * mix_slots<Shape>; }
  TINYATTN_HD Scalar* q_of(index_t b) const {  // null with a score table
    return q ? q + static_cast<std::ptrdiff_t>(b) * Shape::heads * Shape::head_dim : nullptr;
  }
  TINYATTN_HD Scalar* dscores_of(index_t b) const {
    return dscores + static_cast<std::ptrdiff_t>(b) * Shape::heads * Shape::context;
  }
  TINYATTN_HD Scalar* dq_of(index_t b) const {  // null with a score table
    return dq ? dq + static_cast<std::ptrdiff_t>(b) * Shape::heads * Shape::head_dim : nullptr;
  }
};

// Member 0 stores the attention pattern (and the constant 1) of sample b, unless it came from there.
template <class Shape, class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE void store_weights(const SampleInputs<Shape, Scalar>& in, const Scalar* w, Scalar* out,
                                                    Team team) {
  if (team.lane != 0 || in.weights) return;
  for (index_t j = 0; j < mix_slots<Shape>; ++j) out[j] = w[j];
}

// Direct path, step 1: attention and the residual stream at the last position (Width = D).
template <class Shape, class Scalar, class RowOps>
struct AttendAndMixRows {
  SampleInputs<Shape, Scalar> in;
  const Scalar* table;  // ((H+1) R, D)
  Scalar* mix_w;        // (N, J)
  Scalar* q;            // (N, H, dh) or null (evaluation)
  Scalar* out;          // (tile, D): rows of samples first, first + 1, ...
  index_t first;
  TINYATTN_HD void operator()(index_t b, Team team) const {
    constexpr index_t D = Shape::d_model, J = mix_slots<Shape>;
    Scalar w[J], resid[RowOps::template share<D>];
    attend_and_mix<Shape, Scalar, D, RowOps>(
        in, table, nullptr, b, w, q ? q + static_cast<std::ptrdiff_t>(b) * Shape::heads * Shape::head_dim : nullptr,
        resid, team);
    store_weights<Shape>(in, w, mix_w + static_cast<std::ptrdiff_t>(b) * J, team);
    RowOps::template store_share<D>(resid, out + static_cast<std::ptrdiff_t>(b - first) * D, team);
  }
};

// Direct path, a table of another width: the sample's mix of the rows of a table derived linearly from
// the per-row residual terms (an MLP's input product, model/table_heads.hpp), with the weights the
// attention already stored (in.weights): out = sum_j w_j table[row_j].
template <class Shape, class Scalar, index_t Width, class RowOps>
struct MixRows {
  SampleInputs<Shape, Scalar> in;  // in.weights: (N, J)
  const Scalar* table;             // ((H+1) R, Width)
  Scalar* out;                     // (tile, Width): rows of samples first, first + 1, ...
  index_t first;
  TINYATTN_HD void operator()(index_t b, Team team) const {
    Scalar w[mix_slots<Shape>];
    Scalar* row = out + static_cast<std::ptrdiff_t>(b - first) * Width;
    if constexpr (RowOps::team_size == 1) {  // the share is the whole row: mix in place
      attend_and_mix<Shape, Scalar, Width, RowOps>(in, table, nullptr, b, w, nullptr, row, team);
    } else {
      Scalar share[RowOps::template share<Width>];
      attend_and_mix<Shape, Scalar, Width, RowOps>(in, table, nullptr, b, w, nullptr, share, team);
      RowOps::template store_share<Width>(share, row, team);
    }
  }
};

// Cross-entropy of one sample's logits row; with dlogits non-null also its gradient.
template <class Shape, class Scalar, class RowOps>
struct CrossEntropyRows {
  const Scalar* logits;  // (tile, Vp): rows of samples first, first + 1, ...
  const index_t* targets;
  Scalar grad_scale;
  Scalar* dlogits;   // (tile, Vp) or null
  Scalar* loss;      // (N)
  index_t* correct;  // (N)
  index_t first;
  TINYATTN_HD void operator()(index_t b, Team team) const {
    constexpr index_t V = Shape::vocab, Vp = padded_vocab<Shape, Scalar>, S = RowOps::template share<Vp>;
    const std::ptrdiff_t row = static_cast<std::ptrdiff_t>(b - first) * Vp;
    Scalar l[S], dl[S];
    RowOps::template load_share<Vp>(logits + row, l, team);
    const auto r = RowOps::template cross_entropy<V, Vp>(l, targets[b], grad_scale, dlogits ? dl : nullptr, team);
    if (dlogits) RowOps::template store_share<Vp>(dl, dlogits + row, team);
    if (team.lane != 0) return;
    loss[b] = static_cast<Scalar>(r.loss);
    correct[b] = r.correct ? 1 : 0;
  }
};

// Direct path, step 3: backward from d loss / d residual (tile, D) to the scores and the query.
template <class Shape, class Scalar, class RowOps>
struct AttendAndMixRowsBackward {
  SampleInputs<Shape, Scalar> in;
  const Scalar* table;   // ((H+1) R, D)
  const Scalar* dresid;  // (tile, D): rows of samples first, first + 1, ...
  SampleGradients<Shape, Scalar> s;
  index_t first;
  TINYATTN_HD void operator()(index_t b, Team team) const {
    constexpr index_t D = Shape::d_model;
    Scalar g[RowOps::template share<D>];
    RowOps::template load_share<D>(dresid + static_cast<std::ptrdiff_t>(b - first) * D, g, team);
    attend_and_mix_backward<Shape, Scalar, D, RowOps>(in, table, nullptr, b, s.w(b), g, s.dscores_of(b), s.dq_of(b),
                                                      team);
  }
};

// The same when a second table was mixed from the same weights (MixRows: the MLP's input, Width M):
// d pattern[h, k] = dresid . table[row] + dinput . input_table[row].
template <class Shape, class Scalar, index_t M, class RowOps>
struct AttendAndMixRowsBackwardWithInput {
  SampleInputs<Shape, Scalar> in;
  const Scalar* table;        // ((H+1) R, D)
  const Scalar* input_table;  // ((H+1) R, M), rows as table's (the x rows of query rows only)
  const Scalar* dresid;       // (tile, D): rows of samples first, first + 1, ...
  const Scalar* dinput;       // (tile, M)
  SampleGradients<Shape, Scalar> s;
  index_t first;
  TINYATTN_HD void operator()(index_t b, Team team) const {
    constexpr index_t D = Shape::d_model, J = mix_slots<Shape>, HT = J - 1;
    const std::ptrdiff_t tile_row = b - first;
    const index_t* slots = in.mix_row + static_cast<std::ptrdiff_t>(b) * J;
    Scalar g[RowOps::template share<D>], gi[RowOps::template share<M>], dpattern[HT], dinput_pattern[HT];
    RowOps::template load_share<D>(dresid + tile_row * D, g, team);
    RowOps::template load_share<M>(dinput + tile_row * M, gi, team);
    const Scalar* rows[J];
    table_rows<D, J>(table, slots, rows);
    RowOps::template dots<D, HT>(g, rows, dpattern, team);
    table_rows<M, J>(input_table, slots, rows);
    RowOps::template dots<M, HT>(gi, rows, dinput_pattern, team);
    for (index_t j = 0; j < HT; ++j) dpattern[j] += dinput_pattern[j];
    pattern_backward<Shape>(in, b, s.w(b), dpattern, s.dscores_of(b), s.dq_of(b), team);
  }
};

// OV path: the whole per-sample training step, fused so that the logits never leave the team:
// attention -> logits from the per-row logit table -> cross-entropy and its gradient -> backward to
// the scores and the query. Stores what the scatters need: mix_w, q, dlogits, dscores, dq.
template <class Shape, class Scalar, class RowOps>
struct TrainSampleFromLogitTable {
  SampleInputs<Shape, Scalar> in;
  const Scalar* logit_table;  // ((H+1) R, Vp)
  const Scalar* rebased;      // (Rq + H Rq (R - Rq), Vp) or null (RowTables::rebased_logit)
  Scalar grad_scale;
  SampleGradients<Shape, Scalar> s;
  Scalar* dlogits;   // (tile, Vp): rows of samples first, first + 1, ...
  Scalar* loss;      // (N)
  index_t* correct;  // (N)
  index_t first;
  TINYATTN_HD void operator()(index_t b, Team team) const {
    constexpr index_t V = Shape::vocab, Vp = padded_vocab<Shape, Scalar>, J = mix_slots<Shape>,
                      S = RowOps::template share<Vp>;
    Scalar w[J], logits[S], dl_share[S];
    attend_and_mix<Shape, Scalar, Vp, RowOps>(in, logit_table, rebased, b, w, s.q_of(b), logits, team);
    store_weights<Shape>(in, w, s.w(b), team);
    // A team of one's share is the whole row: write the gradient in place instead of copying it.
    Scalar* dl_row = dlogits + static_cast<std::ptrdiff_t>(b - first) * Vp;
    Scalar* dl = RowOps::team_size == 1 ? dl_row : dl_share;
    const auto r = RowOps::template cross_entropy<V, Vp>(logits, in.targets[b], grad_scale, dl, team);
    if constexpr (RowOps::team_size > 1) RowOps::template store_share<Vp>(dl, dl_row, team);
    attend_and_mix_backward<Shape, Scalar, Vp, RowOps>(in, logit_table, rebased, b, w, dl, s.dscores_of(b), s.dq_of(b),
                                                       team);
    if (team.lane != 0) return;
    loss[b] = static_cast<Scalar>(r.loss);
    correct[b] = r.correct ? 1 : 0;
  }
};

// OV path: evaluation of one sample, loss and hit only; nothing else is stored.
template <class Shape, class Scalar, class RowOps>
struct EvaluateSampleFromLogitTable {
  SampleInputs<Shape, Scalar> in;
  const Scalar* logit_table;  // ((H+1) R, Vp)
  const Scalar* rebased;      // (Rq + H Rq (R - Rq), Vp) or null (RowTables::rebased_logit)
  Scalar* loss;               // (N)
  index_t* correct;           // (N)
  TINYATTN_HD void operator()(index_t b, Team team) const {
    constexpr index_t V = Shape::vocab, Vp = padded_vocab<Shape, Scalar>, J = mix_slots<Shape>;
    Scalar w[J], logits[RowOps::template share<Vp>];
    attend_and_mix<Shape, Scalar, Vp, RowOps>(in, logit_table, rebased, b, w, nullptr, logits, team);
    const auto r =
        RowOps::template cross_entropy<V, Vp>(logits, in.targets[b], Scalar(0), static_cast<Scalar*>(nullptr), team);
    if (team.lane != 0) return;
    loss[b] = static_cast<Scalar>(r.loss);
    correct[b] = r.correct ? 1 : 0;
  }
};

}  // namespace tinyattn::kernels
