// tinyattn/layers/attention.hpp — multi-head self-attention, as TransformerLens's Attention.
//
//   q[b, i, h] = x_query[b, i] W_Q[h] + b_Q[h]                q (B, Tq, H, dh)
//   k[b, j, h] = x[b, j] W_K[h] + b_K[h]                      k (B, T, H, dh)     v likewise
//   scores[b, h, i, j] = q[b, i, h] . k[b, j, h]              (B, H, Tq, T), unscaled (as plotted)
//   pattern[b, h, i]   = softmax over j of scores / sqrt(dh)  causal: keys after the query's position
//                        are left out (pattern 0)
//   z[b, i, h]         = sum over j of pattern[b, h, i, j] v[b, j, h]          z (B, Tq, H, dh)
//   out[b, i]          = sum over h of z[b, i, h] W_O[h] + b_O = z (B Tq, H dh) W_O (H dh, D) + b_O
//
// Queries are computed for Tq positions: all T, or only the last one (Tq = 1) when the loss reads the
// last position alone and this is the last block — nothing at another query position reaches the loss
// then. Query i sits at position T - Tq + i. Keys and values always cover all T positions.
//
// The attention core (scores, softmax, mixing) runs one (sample, head) per item: every item owns its
// rows of q, k, v and of their gradients, so the backward needs no scatter and is deterministic.
// Softmax as torch's: (scores / sqrt(dh)) minus their maximum over the visible keys, exp, divided by
// the sum.
#pragma once

#include <cmath>

#include "tinyattn/backend/primitives.hpp"
#include "tinyattn/core/math.hpp"
#include "tinyattn/layers/matmul.hpp"

namespace tinyattn::layers {

struct AttentionDims {
  index_t B, T, Tq, H, dh;
  bool causal;
  index_t query_offset() const { return T - Tq; }  // position of query 0
};

// ---- projections ----------------------------------------------------------------------------------------
// The weights W_Q, W_K, W_V are stored (H, D, dh), as TransformerLens's. A layer multiplies by them as one
// (D, H dh) matrix each — column h dh + e of row d is W[h][d][e] — so that the projections of all heads
// are one product of width H dh instead of H products of width dh (which wastes most of a GEMM kernel).
template <class Scalar>
struct HeadsToColumns {
  Scalar* cols;     // (D, H dh)
  const Scalar* w;  // (H, D, dh)
  index_t H, D, dh;
  TINYATTN_HD void operator()(index_t i) const {  // i = (d, h, e), row-major
    const index_t e = i % dh, h = (i / dh) % H, d = i / (dh * H);
    cols[i] = w[(static_cast<std::ptrdiff_t>(h) * D + d) * dh + e];
  }
};
template <class Scalar>
struct AddColumnsToHeads {  // run once per chunk and block: a row of dh values per item, not one value
  Scalar* w;                // (H, D, dh)
  const Scalar* cols;       // (D, H dh)
  index_t H, D, dh;
  TINYATTN_HD void operator()(index_t row) const {  // row = (h, d)
    const index_t d = row % D, h = row / D;
    Scalar* out = w + static_cast<std::ptrdiff_t>(row) * dh;
    const Scalar* in = cols + (static_cast<std::ptrdiff_t>(d) * H + h) * dh;
    for (index_t e = 0; e < dh; ++e) out[e] += in[e];
  }
};
// cols (D, H dh) from W (H, D, dh).
template <class Backend, class Scalar>
void heads_to_columns(Scalar* cols, const Scalar* w, index_t H, index_t D, index_t dh) {
  Primitives<Backend>::for_each(H * D * dh, HeadsToColumns<Scalar>{cols, w, H, D, dh});
}
// W (H, D, dh) += cols (D, H dh).
template <class Backend, class Scalar>
void add_columns_to_heads(Scalar* w, const Scalar* cols, index_t H, index_t D, index_t dh) {
  Primitives<Backend>::for_each(H * D, AddColumnsToHeads<Scalar>{w, cols, H, D, dh});
}

// q (B, Tq, H, dh) = x_query (B Tq, D) W_Q + b_Q;  k, v (B, T, H, dh) from x (B T, D).
// w_q, w_k, w_v: (D, H dh) (heads_to_columns); biases (H, dh) or null (frozen at zero or absent).
template <class Backend, class Scalar>
void qkv_forward(Scalar* q, Scalar* k, Scalar* v, const Scalar* x, const Scalar* x_query, const Scalar* w_q,
                 const Scalar* w_k, const Scalar* w_v, const Scalar* b_q, const Scalar* b_k, const Scalar* b_v,
                 const AttentionDims& a, index_t D) {
  const index_t width = a.H * a.dh;  // (H, dh) per row
  matmul_forward<Backend>(q, width, x_query, D, w_q, width, a.B * a.Tq, D, width);
  matmul_forward<Backend>(k, width, x, D, w_k, width, a.B * a.T, D, width);
  matmul_forward<Backend>(v, width, x, D, w_v, width, a.B * a.T, D, width);
  if (b_q) {
    bias_forward<Backend>(q, width, b_q, a.B * a.Tq, width);
    bias_forward<Backend>(k, width, b_k, a.B * a.T, width);
    bias_forward<Backend>(v, width, b_v, a.B * a.T, width);
  }
}

// dx (B T, D) += dk W_K^T + dv W_V^T;  dx_query (B Tq, D) += dq W_Q^T (it may be dx itself when
// Tq = T);  dW_m (D, H dh) += x^T dm (add_columns_to_heads takes them back to (H, D, dh));
// db_m (H, dh) += column sums (when non-null).
template <class Backend, class Scalar>
void qkv_backward(Scalar* dx, Scalar* dx_query, Scalar* dw_q, Scalar* dw_k, Scalar* dw_v, Scalar* db_q, Scalar* db_k,
                  Scalar* db_v, const Scalar* dq, const Scalar* dk, const Scalar* dv, const Scalar* x,
                  const Scalar* x_query, const Scalar* w_q, const Scalar* w_k, const Scalar* w_v,
                  const AttentionDims& a, index_t D) {
  const index_t width = a.H * a.dh;
  matmul_backward_weight<Backend>(dw_q, width, x_query, D, dq, width, a.B * a.Tq, D, width);
  matmul_backward_weight<Backend>(dw_k, width, x, D, dk, width, a.B * a.T, D, width);
  matmul_backward_weight<Backend>(dw_v, width, x, D, dv, width, a.B * a.T, D, width);
  matmul_backward_input<Backend>(dx_query, D, dq, width, w_q, width, a.B * a.Tq, D, width, true);
  matmul_backward_input<Backend>(dx, D, dk, width, w_k, width, a.B * a.T, D, width, true);
  matmul_backward_input<Backend>(dx, D, dv, width, w_v, width, a.B * a.T, D, width, true);
  if (db_q) {
    bias_backward<Backend>(db_q, dq, width, a.B * a.Tq, width);
    bias_backward<Backend>(db_k, dk, width, a.B * a.T, width);
    bias_backward<Backend>(db_v, dv, width, a.B * a.T, width);
  }
}

// ---- the attention core: one (sample, head) per item ------------------------------------------------------
// The context T and d_head are compile-time constants here (the engine's shape): a head's keys and
// values are copied into small local arrays, keys transposed, so that every loop runs over T keys or
// dh features with a fixed trip count and vectorizes. Masked keys get score -inf, weight exactly 0.
//
// Queries are taken R at a time. Under a causal mask a block of queries that sits in the first half of
// the context sees only the first half of the keys: its loops over keys run over T/2 (again a fixed
// count) and leave out keys of weight exactly 0, which would add exact zeros. Inspection, which keeps
// every raw score, runs over all T.
template <index_t T>
struct CausalKeys {
  // The keys of a block whose queries end at `queries_end`: T/2 or T (T/2 only where it is a whole
  // number of 16-float vectors).
  static constexpr index_t kHalf = T % 32 == 0 ? T / 2 : T;
  TINYATTN_HD static bool first_half(const AttentionDims& a, index_t queries_end, bool all_keys) {
    return kHalf < T && a.causal && !all_keys && a.T - a.Tq + queries_end <= kHalf;
  }
};

template <class Scalar, index_t T, index_t Dh>
struct AttendSampleHead {
  static constexpr index_t R = 4;  // queries per block: their score and output rows stay in registers
  Scalar* z;                       // (B, Tq, H, dh)
  Scalar* pattern;                 // (B, H, Tq, T)
  Scalar* scores;                  // (B, H, Tq, T) unscaled, or null (only inspection keeps them)
  const Scalar* q;                 // (B, Tq, H, dh)
  const Scalar* k;                 // (B, T, H, dh)
  const Scalar* v;                 // (B, T, H, dh)
  AttentionDims a;
  Scalar sqrt_dh;
  TINYATTN_HD void operator()(index_t item) const {
    const index_t b = item / a.H, h = item % a.H, H = a.H;
    Scalar kt[Dh][T], vs[T][Dh];  // keys transposed, values
    for (index_t j = 0; j < T; ++j) {
      const std::ptrdiff_t row = ((static_cast<std::ptrdiff_t>(b) * T + j) * H + h) * Dh;
      for (index_t e = 0; e < Dh; ++e) {
        kt[e][j] = k[row + e];
        vs[j][e] = v[row + e];
      }
    }
    for (index_t i0 = 0; i0 < a.Tq; i0 += R) {
      const index_t rows = a.Tq - i0 < R ? a.Tq - i0 : R;  // queries in this block
      if (CausalKeys<T>::first_half(a, i0 + rows, scores != nullptr))
        query_block<CausalKeys<T>::kHalf>(b, h, i0, rows, kt, vs);
      else
        query_block<T>(b, h, i0, rows, kt, vs);
    }
  }
  // Queries i0 .. i0 + rows - 1 against keys 0 .. K - 1 (the keys from K on have weight 0).
  template <index_t K>
  TINYATTN_HD void query_block(index_t b, index_t h, index_t i0, index_t rows, const Scalar (&kt)[Dh][T],
                               const Scalar (&vs)[T][Dh]) const {
    const index_t H = a.H;
    Scalar qs[R][Dh], s[R][T], zs[R][Dh];
    for (index_t r = 0; r < R; ++r)
      for (index_t e = 0; e < Dh; ++e)
        qs[r][e] = r < rows ? q[((static_cast<std::ptrdiff_t>(b) * a.Tq + i0 + r) * H + h) * Dh + e] : Scalar(0);
    // s[r][j] = q_r . k_j, one key per vector lane
    for (index_t r = 0; r < R; ++r)
      for (index_t j = 0; j < T; ++j) s[r][j] = 0;
    for (index_t e = 0; e < Dh; ++e)
      for (index_t r = 0; r < R; ++r) {
        const Scalar qe = qs[r][e];
        TINYATTN_SIMD
        for (index_t j = 0; j < K; ++j) s[r][j] += qe * kt[e][j];
      }
    for (index_t r = 0; r < rows; ++r) {
      const index_t i = i0 + r;
      const index_t keys = a.causal ? T - a.Tq + i + 1 : T;  // keys this query may see
      const std::ptrdiff_t at = ((static_cast<std::ptrdiff_t>(b) * H + h) * a.Tq + i) * T;
      if (scores)
        for (index_t j = 0; j < T; ++j) scores[at + j] = s[r][j];
      // Softmax over the visible keys, in separate loops so that each vectorizes (the maximum and the
      // sum are reductions in a fixed lane order: deterministic, as every loop here); the mask is a
      // product with 0 or 1 (GCC vectorizes that, not a select).
      Scalar top = s[r][0] / sqrt_dh;
      TINYATTN_SIMD_MAX(top)
      for (index_t j = 0; j < K; ++j) top = j < keys && s[r][j] / sqrt_dh > top ? s[r][j] / sqrt_dh : top;
      TINYATTN_SIMD
      for (index_t j = 0; j < K; ++j) s[r][j] = math::exp(s[r][j] / sqrt_dh - top) * static_cast<Scalar>(j < keys);
      Scalar total = 0;
      TINYATTN_SIMD_SUM(total)
      for (index_t j = 0; j < K; ++j) total += s[r][j];
      TINYATTN_SIMD
      for (index_t j = 0; j < K; ++j) s[r][j] = s[r][j] / total;
      for (index_t j = 0; j < T; ++j) pattern[at + j] = s[r][j];  // 0 from K on
    }
    for (index_t r = rows; r < R; ++r)
      for (index_t j = 0; j < K; ++j) s[r][j] = 0;
    // zs[r] = sum_j p[r][j] v_j, one feature per vector lane
    for (index_t r = 0; r < R; ++r)
      for (index_t e = 0; e < Dh; ++e) zs[r][e] = 0;
    for (index_t j = 0; j < K; ++j)
      for (index_t r = 0; r < R; ++r) {
        const Scalar p = s[r][j];
        TINYATTN_SIMD
        for (index_t e = 0; e < Dh; ++e) zs[r][e] += p * vs[j][e];
      }
    for (index_t r = 0; r < rows; ++r) {
      Scalar* out = z + ((static_cast<std::ptrdiff_t>(b) * a.Tq + i0 + r) * H + h) * Dh;
      for (index_t e = 0; e < Dh; ++e) out[e] = zs[r][e];
    }
  }
};

// z, pattern (and scores when non-null) from q, k, v. requires: a.T == T and a.dh == Dh.
template <class Backend, index_t T, index_t Dh, class Scalar>
void attention_forward(Scalar* z, Scalar* pattern, Scalar* scores, const Scalar* q, const Scalar* k, const Scalar* v,
                       const AttentionDims& a) {
  const Scalar sqrt_dh = static_cast<Scalar>(std::sqrt(static_cast<double>(Dh)));
  Primitives<Backend>::for_each(a.B * a.H, AttendSampleHead<Scalar, T, Dh>{z, pattern, scores, q, k, v, a, sqrt_dh});
}

// Backward of the core, per (sample, head): with dp[j] = dz[i] . v[j],
//   dv[j] += p[i, j] dz[i];   ds[i, j] = p[i, j] (dp[j] - sum_j p[i, j] dp[j]) / sqrt(dh)
//   dq[i]  = sum_j ds[i, j] k[j];   dk[j] += ds[i, j] q[i]
template <class Scalar, index_t T, index_t Dh>
struct AttendSampleHeadBackward {
  static constexpr index_t R = 4;  // queries per block, as in the forward
  Scalar* dq;                      // (B, Tq, H, dh), written
  Scalar* dk;                      // (B, T, H, dh), written
  Scalar* dv;                      // (B, T, H, dh), written
  const Scalar* dz;                // (B, Tq, H, dh)
  const Scalar* pattern;           // (B, H, Tq, T)
  const Scalar* q;
  const Scalar* k;
  const Scalar* v;
  AttentionDims a;
  Scalar sqrt_dh;
  TINYATTN_HD void operator()(index_t item) const {
    const index_t b = item / a.H, h = item % a.H, H = a.H;
    Scalar ks[T][Dh], vt[Dh][T], dks[T][Dh], dvs[T][Dh];  // keys, values transposed, their gradients
    for (index_t j = 0; j < T; ++j) {
      const std::ptrdiff_t row = ((static_cast<std::ptrdiff_t>(b) * T + j) * H + h) * Dh;
      for (index_t e = 0; e < Dh; ++e) {
        ks[j][e] = k[row + e];
        vt[e][j] = v[row + e];
        dks[j][e] = dvs[j][e] = 0;
      }
    }
    for (index_t i0 = 0; i0 < a.Tq; i0 += R) {
      const index_t rows = a.Tq - i0 < R ? a.Tq - i0 : R;
      if (CausalKeys<T>::first_half(a, i0 + rows, false))
        query_block<CausalKeys<T>::kHalf>(b, h, i0, rows, ks, vt, dks, dvs);
      else
        query_block<T>(b, h, i0, rows, ks, vt, dks, dvs);
    }
    for (index_t j = 0; j < T; ++j) {
      const std::ptrdiff_t row = ((static_cast<std::ptrdiff_t>(b) * T + j) * H + h) * Dh;
      for (index_t e = 0; e < Dh; ++e) {
        dk[row + e] = dks[j][e];
        dv[row + e] = dvs[j][e];
      }
    }
  }
  // Queries i0 .. i0 + rows - 1 against keys 0 .. K - 1 (the keys from K on have weight 0).
  template <index_t K>
  TINYATTN_HD void query_block(index_t b, index_t h, index_t i0, index_t rows, const Scalar (&ks)[T][Dh],
                               const Scalar (&vt)[Dh][T], Scalar (&dks)[T][Dh], Scalar (&dvs)[T][Dh]) const {
    const index_t H = a.H;
    Scalar qs[R][Dh], dzs[R][Dh], p[R][T], ds[R][T], dqs[R][Dh];
    for (index_t r = 0; r < R; ++r) {
      const std::ptrdiff_t query = ((static_cast<std::ptrdiff_t>(b) * a.Tq + i0 + r) * H + h) * Dh;
      const std::ptrdiff_t at = ((static_cast<std::ptrdiff_t>(b) * H + h) * a.Tq + i0 + r) * T;
      for (index_t e = 0; e < Dh; ++e) {
        qs[r][e] = r < rows ? q[query + e] : Scalar(0);
        dzs[r][e] = r < rows ? dz[query + e] : Scalar(0);
      }
      for (index_t j = 0; j < K; ++j) p[r][j] = r < rows ? pattern[at + j] : Scalar(0);  // masked keys: 0
    }
    // dp[r][j] = dz_r . v_j (in ds), one key per lane
    for (index_t r = 0; r < R; ++r)
      for (index_t j = 0; j < K; ++j) ds[r][j] = 0;
    for (index_t e = 0; e < Dh; ++e)
      for (index_t r = 0; r < R; ++r) {
        const Scalar g = dzs[r][e];
        TINYATTN_SIMD
        for (index_t j = 0; j < K; ++j) ds[r][j] += g * vt[e][j];
      }
    for (index_t r = 0; r < R; ++r) {
      Scalar inner = 0;
      TINYATTN_SIMD_SUM(inner)
      for (index_t j = 0; j < K; ++j) inner += p[r][j] * ds[r][j];
      TINYATTN_SIMD
      for (index_t j = 0; j < K; ++j) ds[r][j] = p[r][j] * (ds[r][j] - inner) / sqrt_dh;
    }
    // dq_r = sum_j ds[r][j] k_j;  dv_j += sum_r p[r][j] dz_r;  dk_j += sum_r ds[r][j] q_r
    for (index_t r = 0; r < R; ++r)
      for (index_t e = 0; e < Dh; ++e) dqs[r][e] = 0;
    for (index_t j = 0; j < K; ++j)
      for (index_t r = 0; r < R; ++r) {
        const Scalar pj = p[r][j], dsj = ds[r][j];
        TINYATTN_SIMD
        for (index_t e = 0; e < Dh; ++e) {
          dqs[r][e] += dsj * ks[j][e];
          dvs[j][e] += pj * dzs[r][e];
          dks[j][e] += dsj * qs[r][e];
        }
      }
    for (index_t r = 0; r < rows; ++r) {
      Scalar* out = dq + ((static_cast<std::ptrdiff_t>(b) * a.Tq + i0 + r) * H + h) * Dh;
      for (index_t e = 0; e < Dh; ++e) out[e] = dqs[r][e];
    }
  }
};

// dq, dk, dv (written) from dz. requires: a.T == T and a.dh == Dh.
template <class Backend, index_t T, index_t Dh, class Scalar>
void attention_backward(Scalar* dq, Scalar* dk, Scalar* dv, const Scalar* dz, const Scalar* pattern, const Scalar* q,
                        const Scalar* k, const Scalar* v, const AttentionDims& a) {
  const Scalar sqrt_dh = static_cast<Scalar>(std::sqrt(static_cast<double>(Dh)));
  Primitives<Backend>::for_each(a.B * a.H,
                                AttendSampleHeadBackward<Scalar, T, Dh>{dq, dk, dv, dz, pattern, q, k, v, a, sqrt_dh});
}

// ---- output projection ----------------------------------------------------------------------------------
// out (B Tq, D) = z (B Tq, H dh) W_O (H dh, D) + b_O (D, or null).
template <class Backend, class Scalar>
void attention_output_forward(Scalar* out, const Scalar* z, const Scalar* w_o, const Scalar* b_o, index_t rows,
                              index_t H, index_t dh, index_t D) {
  matmul_forward<Backend>(out, D, z, H * dh, w_o, D, rows, H * dh, D);
  if (b_o) bias_forward<Backend>(out, D, b_o, rows, D);
}

// dz (B Tq, H dh) = dout W_O^T;  dW_O += z^T dout;  db_O += column sums (when non-null).
template <class Backend, class Scalar>
void attention_output_backward(Scalar* dz, Scalar* dw_o, Scalar* db_o, const Scalar* dout, const Scalar* z,
                               const Scalar* w_o, index_t rows, index_t H, index_t dh, index_t D) {
  matmul_backward_weight<Backend>(dw_o, D, z, H * dh, dout, D, rows, H * dh, D);
  matmul_backward_input<Backend>(dz, H * dh, dout, D, w_o, D, rows, H * dh, D, false);
  if (db_o) bias_backward<Backend>(db_o, dout, D, rows, D);
}

}  // namespace tinyattn::layers
