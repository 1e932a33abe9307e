// tinyattn/model/sample_kernels.hpp — the per-sample half of the network, written once for every
// backend: small TINYATTN_HD functions composed into functors that Primitives<B>::for_each runs with
// one call per sample (a loop iteration on a CPU, a thread on a GPU).
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

namespace tinyattn::kernels {

// The QKV table: (3, H, R, dh) — query, key and value projections of every distinct row.
template <class Shape, class Scalar>
struct QkvTable {
  const Scalar* data;
  index_t rows;  // R
  TINYATTN_HD const Scalar* query(index_t head, index_t row) const { return at(0, head, row); }
  TINYATTN_HD const Scalar* key(index_t head, index_t row) const { return at(1, head, row); }
  TINYATTN_HD const Scalar* value(index_t head, index_t row) const { return at(2, head, row); }
  TINYATTN_HD const Scalar* at(index_t which, index_t head, index_t row) const {
    return data + ((static_cast<std::ptrdiff_t>(which) * Shape::heads + head) * rows + row) * Shape::head_dim;
  }
};

template <class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE Scalar dot(const Scalar* a, const Scalar* b, index_t n) {
  Scalar acc = 0;
  TINYATTN_SIMD_SUM(acc)
  for (index_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

// Softmax over n scores divided by `divisor` (sqrt(head_dim)), as torch's (s / sqrt(dh)).softmax(-1).
template <class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE void softmax_scaled(const Scalar* scores, Scalar divisor, index_t n, Scalar* out) {
  Scalar top = scores[0] / divisor;
  for (index_t i = 1; i < n; ++i) top = scores[i] / divisor > top ? scores[i] / divisor : top;
  Scalar total = 0;
  for (index_t i = 0; i < n; ++i) {
    out[i] = math::exp(scores[i] / divisor - top);
    total += out[i];
  }
  for (index_t i = 0; i < n; ++i) out[i] /= total;
}

// ---- attention of the last query ----------------------------------------------------------------------
// scores[h, k] = q_h(T-1) . k_h(k)  (unscaled, as the notebook plots them); pattern = softmax(scores/sqrt(dh)).
// Writes pattern (H, T); scores (H, T) and q (H, dh) when non-null.
template <class Shape, class Scalar>
TINYATTN_HD void attend_last_query(const QkvTable<Shape, Scalar>& qkv, const index_t* kv_row, Scalar* pattern,
                                   Scalar* scores_out, Scalar* q_out) {
  constexpr index_t H = Shape::heads, T = Shape::context, dh = Shape::head_dim;
  const Scalar divisor = math::sqrt(static_cast<Scalar>(dh));
  for (index_t h = 0; h < H; ++h) {
    const Scalar* q = qkv.query(h, kv_row[T - 1]);
    Scalar scores[T];
    for (index_t k = 0; k < T; ++k) scores[k] = dot(q, qkv.key(h, kv_row[k]), dh);
    softmax_scaled(scores, divisor, T, pattern + h * T);
    if (scores_out)
      for (index_t k = 0; k < T; ++k) scores_out[h * T + k] = scores[k];
    if (q_out)
      for (index_t e = 0; e < dh; ++e) q_out[h * dh + e] = q[e];
  }
}

// Backward of attend_last_query. dpattern (H, T) in; writes dscores (H, T) = d loss / d scores and
// dq (H, dh) = d loss / d q. Softmax backward: ds = p * (dp - sum(p * dp)) / sqrt(dh).
template <class Shape, class Scalar>
TINYATTN_HD void attend_last_query_backward(const QkvTable<Shape, Scalar>& qkv, const index_t* kv_row,
                                            const Scalar* pattern, const Scalar* dpattern, Scalar* dscores,
                                            Scalar* dq) {
  constexpr index_t H = Shape::heads, T = Shape::context, dh = Shape::head_dim;
  const Scalar divisor = math::sqrt(static_cast<Scalar>(dh));
  for (index_t h = 0; h < H; ++h) {
    const Scalar* p = pattern + h * T;
    const Scalar* dp = dpattern + h * T;
    Scalar inner = 0;
    for (index_t k = 0; k < T; ++k) inner += p[k] * dp[k];
    for (index_t k = 0; k < T; ++k) dscores[h * T + k] = p[k] * (dp[k] - inner) / divisor;
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
// out (Width) = sum_j w[j] * table[row[j]]: the sample's logits (table of per-row logits) or its
// residual stream at the last position (table of per-row residual contributions).
template <index_t Width, index_t J, class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE void mix_rows(const Scalar* table, const index_t* row, const Scalar* w, Scalar* out) {
  const Scalar* rows[J];
  for (index_t j = 0; j < J; ++j) rows[j] = table + static_cast<std::ptrdiff_t>(row[j]) * Width;
  TINYATTN_SIMD
  for (index_t c = 0; c < Width; ++c) {
    Scalar acc = 0;
    for (index_t j = 0; j < J; ++j) acc += w[j] * rows[j][c];
    out[c] = acc;
  }
}

// Backward of mix_rows with respect to the first `Slots` weights: dw[j] = g . table[row[j]].
// (The rows' own gradients are scattered later by a ScatterPlan; the last weight is the constant 1.)
template <index_t Width, index_t Slots, class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE void mix_rows_backward(const Scalar* table, const index_t* row, const Scalar* g,
                                                        Scalar* dw) {
  for (index_t j = 0; j < Slots; ++j) dw[j] = dot(g, table + static_cast<std::ptrdiff_t>(row[j]) * Width, Width);
}

// ---- cross-entropy -----------------------------------------------------------------------------------------
struct CrossEntropyResult {
  double loss;
  bool correct;
};

// loss = logsumexp(logits) - logits[target]; correct = (first argmax == target), as torch.argmax.
// With dlogits non-null also writes (softmax - onehot(target)) * grad_scale, the gradient of
// grad_scale * loss (grad_scale = 1/N for the batch mean).
template <index_t V, class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE CrossEntropyResult cross_entropy(const Scalar* logits, index_t target,
                                                                   Scalar grad_scale, Scalar* dlogits) {
  Scalar top = logits[0];
  TINYATTN_SIMD_MAX(top)
  for (index_t c = 0; c < V; ++c) top = logits[c] > top ? logits[c] : top;
  index_t best = V;  // first index of the maximum, as torch.argmax
  TINYATTN_SIMD_MIN(best)
  for (index_t c = 0; c < V; ++c) best = (logits[c] == top && c < best) ? c : best;
  Scalar total = 0;
  if (dlogits) {
    TINYATTN_SIMD_SUM(total)
    for (index_t c = 0; c < V; ++c) {
      const Scalar e = math::exp(logits[c] - top);
      dlogits[c] = e;
      total += e;
    }
    const Scalar inv_total = Scalar(1) / total;
    TINYATTN_SIMD
    for (index_t c = 0; c < V; ++c)
      dlogits[c] = (dlogits[c] * inv_total - (c == target ? Scalar(1) : Scalar(0))) * grad_scale;
  } else {
    TINYATTN_SIMD_SUM(total)
    for (index_t c = 0; c < V; ++c) total += math::exp(logits[c] - top);
  }
  const Scalar loss = math::log(total) + top - logits[target];
  // A NaN anywhere in the logits must reach the loss so that divergence is detected.
  return {static_cast<double>(top == top ? loss : top), best == target};
}

// ---- functors: one call per sample ---------------------------------------------------------------------------
// Shared inputs of every per-sample functor.
template <class Shape, class Scalar>
struct SampleInputs {
  QkvTable<Shape, Scalar> qkv;
  const index_t* kv_row;   // (N, T)
  const index_t* mix_row;  // (N, J)
  const index_t* targets;  // (N)
};

template <class Shape>
inline constexpr index_t mix_slots = Shape::heads * Shape::context + 1;  // J

// One sample's forward up to the mixed rows: pattern (into w), optional q, and
// out (Width) = sum_j w_j table[row_j]. OV path: table = per-row logits (Width = V); direct path:
// table = per-row residual terms (Width = D). w (J), q (H, dh) or null, out (Width) belong to sample b.
template <class Shape, class Scalar, index_t Width>
TINYATTN_HD TINYATTN_FORCEINLINE void attend_and_mix(const SampleInputs<Shape, Scalar>& in, const Scalar* table,
                                                     index_t b, Scalar* w, Scalar* q, Scalar* out) {
  constexpr index_t T = Shape::context, J = mix_slots<Shape>;
  attend_last_query<Shape>(in.qkv, in.kv_row + static_cast<std::ptrdiff_t>(b) * T, w, static_cast<Scalar*>(nullptr), q);
  w[J - 1] = Scalar(1);
  mix_rows<Width, J>(table, in.mix_row + static_cast<std::ptrdiff_t>(b) * J, w, out);
}

// Backward of attend_and_mix for sample b, given g = d loss / d out (Width): the attention weights'
// gradient through the table rows, then through the softmax to the scores and the query.
// dscores (H, T) and dq (H, dh) belong to sample b. (The table rows' own gradients are scattered
// afterwards by a ScatterPlan.)
template <class Shape, class Scalar, index_t Width>
TINYATTN_HD TINYATTN_FORCEINLINE void attend_and_mix_backward(const SampleInputs<Shape, Scalar>& in,
                                                              const Scalar* table, index_t b, const Scalar* w,
                                                              const Scalar* g, Scalar* dscores, Scalar* dq) {
  constexpr index_t T = Shape::context, J = mix_slots<Shape>, HT = J - 1;
  Scalar dpattern[HT];
  mix_rows_backward<Width, HT>(table, in.mix_row + static_cast<std::ptrdiff_t>(b) * J, g, dpattern);
  attend_last_query_backward<Shape>(in.qkv, in.kv_row + static_cast<std::ptrdiff_t>(b) * T, w, dpattern, dscores,
                                    dq);
}

// Per-sample buffers of a training batch, row pointers for sample b.
template <class Shape, class Scalar>
struct SampleGradients {
  Scalar* mix_w;    // (N, J)
  Scalar* q;        // (N, H, dh)
  Scalar* dscores;  // (N, H, T)
  Scalar* dq;       // (N, H, dh)
  TINYATTN_HD Scalar* w(index_t b) const { return mix_w + static_cast<std::ptrdiff_t>(b) * mix_slots<Shape>; }
  TINYATTN_HD Scalar* q_of(index_t b) const {
    return q + static_cast<std::ptrdiff_t>(b) * Shape::heads * Shape::head_dim;
  }
  TINYATTN_HD Scalar* dscores_of(index_t b) const {
    return dscores + static_cast<std::ptrdiff_t>(b) * Shape::heads * Shape::context;
  }
  TINYATTN_HD Scalar* dq_of(index_t b) const {
    return dq + static_cast<std::ptrdiff_t>(b) * Shape::heads * Shape::head_dim;
  }
};

// Direct path, step 1: attention and the residual stream at the last position (Width = D).
template <class Shape, class Scalar>
struct AttendAndMixRows {
  SampleInputs<Shape, Scalar> in;
  const Scalar* table;  // ((H+1) R, D)
  Scalar* mix_w;        // (N, J)
  Scalar* q;            // (N, H, dh) or null (evaluation)
  Scalar* out;          // (N, D)
  TINYATTN_HD void operator()(index_t b) const {
    constexpr index_t D = Shape::d_model;
    attend_and_mix<Shape, Scalar, D>(in, table, b, mix_w + static_cast<std::ptrdiff_t>(b) * mix_slots<Shape>,
                                     q ? q + static_cast<std::ptrdiff_t>(b) * Shape::heads * Shape::head_dim : nullptr,
                                     out + static_cast<std::ptrdiff_t>(b) * D);
  }
};

// Cross-entropy of one sample's logits row; with dlogits non-null also its gradient.
template <class Shape, class Scalar>
struct CrossEntropyRows {
  const Scalar* logits;  // (N, V)
  const index_t* targets;
  Scalar grad_scale;
  Scalar* dlogits;   // (N, V) or null
  Scalar* loss;      // (N)
  index_t* correct;  // (N)
  TINYATTN_HD void operator()(index_t b) const {
    constexpr index_t V = Shape::vocab;
    const auto r = cross_entropy<V>(logits + static_cast<std::ptrdiff_t>(b) * V, targets[b], grad_scale,
                                    dlogits ? dlogits + static_cast<std::ptrdiff_t>(b) * V : nullptr);
    loss[b] = static_cast<Scalar>(r.loss);
    correct[b] = r.correct ? 1 : 0;
  }
};

// Direct path, step 3: backward from d loss / d residual (N, D) to the scores and the query.
template <class Shape, class Scalar>
struct AttendAndMixRowsBackward {
  SampleInputs<Shape, Scalar> in;
  const Scalar* table;  // ((H+1) R, D)
  const Scalar* dresid; // (N, D)
  SampleGradients<Shape, Scalar> s;
  TINYATTN_HD void operator()(index_t b) const {
    constexpr index_t D = Shape::d_model;
    attend_and_mix_backward<Shape, Scalar, D>(in, table, b, s.w(b), dresid + static_cast<std::ptrdiff_t>(b) * D,
                                              s.dscores_of(b), s.dq_of(b));
  }
};

// OV path: the whole per-sample training step, fused so that the logits never leave the thread:
// attention -> logits from the per-row logit table -> cross-entropy and its gradient -> backward to
// the scores and the query. Stores what the scatters need: mix_w, q, dlogits, dscores, dq.
template <class Shape, class Scalar>
struct TrainSampleFromLogitTable {
  SampleInputs<Shape, Scalar> in;
  const Scalar* logit_table;  // ((H+1) R, V)
  Scalar grad_scale;
  SampleGradients<Shape, Scalar> s;
  Scalar* dlogits;   // (N, V)
  Scalar* loss;      // (N)
  index_t* correct;  // (N)
  TINYATTN_HD void operator()(index_t b) const {
    constexpr index_t V = Shape::vocab;
    Scalar logits[V];
    attend_and_mix<Shape, Scalar, V>(in, logit_table, b, s.w(b), s.q_of(b), logits);
    Scalar* dl = dlogits + static_cast<std::ptrdiff_t>(b) * V;
    const auto r = cross_entropy<V>(logits, in.targets[b], grad_scale, dl);
    loss[b] = static_cast<Scalar>(r.loss);
    correct[b] = r.correct ? 1 : 0;
    attend_and_mix_backward<Shape, Scalar, V>(in, logit_table, b, s.w(b), dl, s.dscores_of(b), s.dq_of(b));
  }
};

// OV path: evaluation of one sample, loss and hit only; nothing else is stored.
template <class Shape, class Scalar>
struct EvaluateSampleFromLogitTable {
  SampleInputs<Shape, Scalar> in;
  const Scalar* logit_table;  // ((H+1) R, V)
  Scalar* loss;      // (N)
  index_t* correct;  // (N)
  TINYATTN_HD void operator()(index_t b) const {
    constexpr index_t V = Shape::vocab, J = mix_slots<Shape>;
    Scalar w[J], logits[V];
    attend_and_mix<Shape, Scalar, V>(in, logit_table, b, w, nullptr, logits);
    const auto r = cross_entropy<V>(logits, in.targets[b], Scalar(0), static_cast<Scalar*>(nullptr));
    loss[b] = static_cast<Scalar>(r.loss);
    correct[b] = r.correct ? 1 : 0;
  }
};

// Inspection: the full forward of one sample at every query position, for the AttentionCache.
// Straightforward on purpose (no last-position shortcut): it is what users look at, and the tests
// check the training path against it. Output pointers are null for parts not asked for.
template <class Shape, class Scalar>
struct InspectSample {
  QkvTable<Shape, Scalar> qkv;
  const Scalar* z;         // (H+1, R, D): u (value through W_O) per head, then x
  const Scalar* w_e;       // (V, D)
  const index_t* kv_row;   // (N, T)
  Scalar* embedded;        // (N, T, D)
  Scalar* scores;          // (N, H, T, T)
  Scalar* pattern;         // (N, H, T, T)
  Scalar* attention_out;   // (N, T, D)
  Scalar* residual;        // (N, T, D)
  Scalar* logits;          // (N, T, V)
  TINYATTN_HD void operator()(index_t b) const {
    constexpr index_t V = Shape::vocab, D = Shape::d_model, H = Shape::heads, T = Shape::context,
                      dh = Shape::head_dim;
    const index_t* row = kv_row + static_cast<std::ptrdiff_t>(b) * T;
    const Scalar divisor = math::sqrt(static_cast<Scalar>(dh));
    const Scalar* x = z + static_cast<std::ptrdiff_t>(H) * qkv.rows * D;
    for (index_t t = 0; t < T; ++t) {
      const std::ptrdiff_t bt = static_cast<std::ptrdiff_t>(b) * T + t;
      Scalar attn[D];
      for (index_t d = 0; d < D; ++d) attn[d] = 0;
      for (index_t h = 0; h < H; ++h) {
        Scalar s[T], p[T];
        for (index_t k = 0; k < T; ++k) s[k] = dot(qkv.query(h, row[t]), qkv.key(h, row[k]), dh);
        softmax_scaled(s, divisor, T, p);
        const std::ptrdiff_t at = ((static_cast<std::ptrdiff_t>(b) * H + h) * T + t) * T;
        for (index_t k = 0; k < T; ++k) {
          if (scores) scores[at + k] = s[k];
          if (pattern) pattern[at + k] = p[k];
          const Scalar* u = z + (static_cast<std::ptrdiff_t>(h) * qkv.rows + row[k]) * D;
          for (index_t d = 0; d < D; ++d) attn[d] += p[k] * u[d];
        }
      }
      const Scalar* xt = x + static_cast<std::ptrdiff_t>(row[t]) * D;
      Scalar resid[D];
      for (index_t d = 0; d < D; ++d) resid[d] = xt[d] + attn[d];
      for (index_t d = 0; d < D; ++d) {
        if (embedded) embedded[bt * D + d] = xt[d];
        if (attention_out) attention_out[bt * D + d] = attn[d];
        if (residual) residual[bt * D + d] = resid[d];
      }
      if (logits)
        for (index_t c = 0; c < V; ++c) logits[bt * V + c] = dot(resid, w_e + static_cast<std::ptrdiff_t>(c) * D, D);
    }
  }
};

}  // namespace tinyattn::kernels
