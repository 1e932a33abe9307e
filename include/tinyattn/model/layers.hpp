// tinyattn/model/layers.hpp — the per-row half of the network: every layer as a forward/backward pair
// over the tables of distinct (token, position) rows (see row_space.hpp), written once on top of
// Primitives<Backend>.
//
// Buffers (R = rows of the RowSpace, M = rows given to the unembedding):
//   x     (R, D)          embedding of each row: W_E[token] + W_pos[position]
//   qkv   (3, H, R, dh)   query, key and value of each row and head
//   u     (H, R, D)       value of each row through the output projection: v_h W_O[h]
//   z     (H + 1, R, D)   u followed by x: the rows whose weighted sum is the residual stream
//   logit (M, Vp)         rows (M, D) W_E^T (tied unembedding); rows padded to Vp >= V columns
//                         (kernels::padded_vocab), the pad columns zero
//   score (H, Rq, R)      q . k of every query row (the first Rq rows: position T-1) with every row
//   rebased (Rq + H Rq (R - Rq), Vp)   the logit table rebased on the query row (row_tables.hpp)
//
// Gradient convention: a backward writes (=) the gradient of the tensor it owns, except W_E, which
// gets two contributions: unembedding_backward writes it, embedding_backward then adds to it.
#pragma once

#include "tinyattn/backend/primitives.hpp"
#include "tinyattn/model/parameter_layout.hpp"
#include "tinyattn/model/sample_kernels.hpp"
#include "tinyattn/ops/index_add.hpp"

namespace tinyattn {

template <class Shape, class Backend, class Scalar>
struct Layers {
  using P = Primitives<Backend>;
  using L = ParameterLayout<Shape>;
  static constexpr index_t V = Shape::vocab, D = Shape::d_model, H = Shape::heads, T = Shape::context,
                           dh = Shape::head_dim;

  // ---- embedding: x (R, D) = W_E[row_token] + W_pos[row_position] ----------------------------------
  struct EmbedRow {
    const Scalar* w_e;
    const Scalar* w_pos;
    const index_t* row_token;
    const index_t* row_position;
    Scalar* x;
    TINYATTN_HD void operator()(index_t r, index_t c0, index_t c1) const {
      const Scalar* e = w_e + static_cast<std::ptrdiff_t>(row_token[r]) * D;
      const Scalar* p = w_pos + static_cast<std::ptrdiff_t>(row_position[r]) * D;
      Scalar* out = x + static_cast<std::ptrdiff_t>(r) * D;
      for (index_t c = c0; c < c1; ++c) out[c] = e[c] + p[c];
    }
  };
  static void embedding_forward(const Scalar* params, const index_t* row_token, const index_t* row_position,
                                index_t rows, Scalar* x) {
    P::for_each_row(
        rows, D, EmbedRow{params + L::token_embedding, params + L::positional_embedding, row_token, row_position, x});
  }
  // dW_E[row_token] += dx; dW_pos[row_position] = sum of dx over its rows. Plans: items R, 1 slot,
  // out rows V (by_token) and T (by_position), width D.
  static void embedding_backward(ScatterPlan<Backend, Scalar>& by_token, ScatterPlan<Backend, Scalar>& by_position,
                                 const Scalar* dx, Scalar* grads) {
    by_token.apply(nullptr, dx, D, grads + L::token_embedding, /*accumulate=*/true);
    by_position.apply(nullptr, dx, D, grads + L::positional_embedding, /*accumulate=*/false);
  }

  // ---- projections: qkv[m, h] (R, dh) = x W_m[h], m in {Q, K, V} ------------------------------------
  // W_Q, W_K, W_V are adjacent (3, H, D, dh) in the parameter buffer: one batched product of 3H.
  static void projection_forward(const Scalar* params, const Scalar* x, index_t rows, Scalar* qkv) {
    GemmArgs<Scalar> g;
    g.m = rows, g.n = dh, g.k = D, g.batch = 3 * H;
    g.a = x, g.lda = D, g.stride_a = 0;
    g.b = params + L::query, g.ldb = dh, g.stride_b = D * dh;
    g.c = qkv, g.ldc = dh, g.stride_c = static_cast<std::ptrdiff_t>(rows) * dh;
    P::gemm(g);
  }
  // dW_m[h] = x^T dqkv[m, h];  dx += sum over (m, h) of dqkv[m, h] W_m[h]^T.
  static void projection_backward(const Scalar* params, const Scalar* x, const Scalar* dqkv, index_t rows,
                                  Scalar* grads, Scalar* dx) {
    GemmArgs<Scalar> w;
    w.m = D, w.n = dh, w.k = rows, w.batch = 3 * H;
    w.a = x, w.lda = D, w.trans_a = true, w.stride_a = 0;
    w.b = dqkv, w.ldb = dh, w.stride_b = static_cast<std::ptrdiff_t>(rows) * dh;
    w.c = grads + L::query, w.ldc = dh, w.stride_c = D * dh;
    P::gemm(w);
    GemmArgs<Scalar> in;
    in.m = rows, in.n = D, in.k = dh, in.batch = 3 * H, in.sum_batches = true, in.accumulate = true;
    in.a = dqkv, in.lda = dh, in.stride_a = static_cast<std::ptrdiff_t>(rows) * dh;
    in.b = params + L::query, in.ldb = dh, in.trans_b = true, in.stride_b = D * dh;
    in.c = dx, in.ldc = D;
    P::gemm(in);
  }

  // ---- output projection: u[h] (R, D) = v[h] W_O[h] -----------------------------------------------------
  static void output_forward(const Scalar* params, const Scalar* qkv, index_t rows, Scalar* u) {
    GemmArgs<Scalar> g;
    g.m = rows, g.n = D, g.k = dh, g.batch = H;
    g.a = qkv + 2 * H * static_cast<std::ptrdiff_t>(rows) * dh, g.lda = dh,
    g.stride_a = static_cast<std::ptrdiff_t>(rows) * dh;
    g.b = params + L::output, g.ldb = D, g.stride_b = dh * D;
    g.c = u, g.ldc = D, g.stride_c = static_cast<std::ptrdiff_t>(rows) * D;
    P::gemm(g);
  }
  // dW_O[h] = v[h]^T du[h];  dv[h] = du[h] W_O[h]^T, written into the value block of dqkv.
  static void output_backward(const Scalar* params, const Scalar* qkv, const Scalar* du, index_t rows, Scalar* grads,
                              Scalar* dqkv) {
    const std::ptrdiff_t value_block = 2 * H * static_cast<std::ptrdiff_t>(rows) * dh;
    GemmArgs<Scalar> w;
    w.m = dh, w.n = D, w.k = rows, w.batch = H;
    w.a = qkv + value_block, w.lda = dh, w.trans_a = true, w.stride_a = static_cast<std::ptrdiff_t>(rows) * dh;
    w.b = du, w.ldb = D, w.stride_b = static_cast<std::ptrdiff_t>(rows) * D;
    w.c = grads + L::output, w.ldc = D, w.stride_c = dh * D;
    P::gemm(w);
    GemmArgs<Scalar> v;
    v.m = rows, v.n = dh, v.k = D, v.batch = H;
    v.a = du, v.lda = D, v.stride_a = static_cast<std::ptrdiff_t>(rows) * D;
    v.b = params + L::output, v.ldb = D, v.trans_b = true, v.stride_b = dh * D;
    v.c = dqkv + value_block, v.ldc = dh, v.stride_c = static_cast<std::ptrdiff_t>(rows) * dh;
    P::gemm(v);
  }

  // ---- score table: score[h] (Rq, R) = q[h][0:Rq] k[h]^T ------------------------------------------------
  static void scores_forward(const Scalar* qkv, index_t rows, index_t query_rows, Scalar* score) {
    GemmArgs<Scalar> g;
    g.m = query_rows, g.n = rows, g.k = dh, g.batch = H;
    g.a = qkv, g.lda = dh, g.stride_a = static_cast<std::ptrdiff_t>(rows) * dh;
    g.b = qkv + static_cast<std::ptrdiff_t>(H) * rows * dh, g.ldb = dh, g.trans_b = true,
    g.stride_b = static_cast<std::ptrdiff_t>(rows) * dh;
    g.c = score, g.ldc = rows, g.stride_c = static_cast<std::ptrdiff_t>(query_rows) * rows;
    P::gemm(g);
  }
  // dq[h][0:Rq] = dscore[h] k[h];  dk[h] = dscore[h]^T q[h][0:Rq]  (the Q and K blocks of dqkv; rows
  // of the Q block past Rq are never written and must stay zero).
  static void scores_backward(const Scalar* qkv, const Scalar* dscore, index_t rows, index_t query_rows, Scalar* dqkv) {
    const std::ptrdiff_t head = static_cast<std::ptrdiff_t>(rows) * dh, key_block = H * head;
    GemmArgs<Scalar> q;
    q.m = query_rows, q.n = dh, q.k = rows, q.batch = H;
    q.a = dscore, q.lda = rows, q.stride_a = static_cast<std::ptrdiff_t>(query_rows) * rows;
    q.b = qkv + key_block, q.ldb = dh, q.stride_b = head;
    q.c = dqkv, q.ldc = dh, q.stride_c = head;
    P::gemm(q);
    GemmArgs<Scalar> k;
    k.m = rows, k.n = dh, k.k = query_rows, k.batch = H;
    k.a = dscore, k.lda = rows, k.trans_a = true, k.stride_a = static_cast<std::ptrdiff_t>(query_rows) * rows;
    k.b = qkv, k.ldb = dh, k.stride_b = head;
    k.c = dqkv + key_block, k.ldc = dh, k.stride_c = head;
    P::gemm(k);
  }

  // The logit table rebased on the query row (model/row_tables.hpp, RebasedLogits). out rows: q < Rq
  // -> base[q] + sum_h OV_h[q]; Rq + (h Rq + q)(R - Rq) + (r - Rq) -> OV_h[r] - OV_h[q] for r >= Rq.
  struct RebaseRow {
    const Scalar* logit;  // ((H+1) R, Vp): OV_h[r] at row h R + r, base[r] at row H R + r
    Scalar* out;          // (Rq + H Rq (R - Rq), Vp)
    index_t rows, query_rows;
    TINYATTN_HD void operator()(index_t row, index_t c0, index_t c1) const {
      constexpr index_t Vp = kernels::padded_vocab<Shape, Scalar>;
      Scalar* o = out + static_cast<std::ptrdiff_t>(row) * Vp;
      const auto at = [&](index_t table_row) { return logit + static_cast<std::ptrdiff_t>(table_row) * Vp; };
      if (row < query_rows) {
        const Scalar* base = at(H * rows + row);
        for (index_t c = c0; c < c1; ++c) {
          Scalar sum = base[c];
          for (index_t h = 0; h < H; ++h) sum += at(h * rows + row)[c];
          o[c] = sum;
        }
        return;
      }
      const index_t keys = rows - query_rows, i = row - query_rows, key = query_rows + i % keys;
      const index_t q = (i / keys) % query_rows, h = i / keys / query_rows;
      const Scalar *ov_key = at(h * rows + key), *ov_query = at(h * rows + q);
      for (index_t c = c0; c < c1; ++c) o[c] = ov_key[c] - ov_query[c];
    }
  };
  static void rebase_forward(const Scalar* logit, index_t rows, index_t query_rows, Scalar* out) {
    P::for_each_row(kernels::rebased_table_rows<Shape>(rows, query_rows), kernels::padded_vocab<Shape, Scalar>,
                    RebaseRow{logit, out, rows, query_rows});
  }
  // Backward: d logit ((H+1) R, Vp) from d rebased. Row h R + r (r >= Rq): sum over q of
  // d rebased(h, q, r); row h R + q (q < Rq): d combined(q) - sum over r of d rebased(h, q, r); base
  // row H R + q: d combined(q); base rows of non-query rows: 0 (the forward never reads them).
  struct RebaseRowBackward {
    const Scalar* drebased;  // (Rq + H Rq (R - Rq), Vp)
    Scalar* dlogit;          // ((H+1) R, Vp)
    index_t rows, query_rows;
    TINYATTN_HD void operator()(index_t row, index_t c0, index_t c1) const {
      constexpr index_t Vp = kernels::padded_vocab<Shape, Scalar>;
      const index_t h = row / rows, r = row % rows;
      const auto at = [&](index_t rebased_row) { return drebased + static_cast<std::ptrdiff_t>(rebased_row) * Vp; };
      const auto delta = [&](index_t q, index_t key) {
        return at(kernels::rebased_difference_row(h, q, key, rows, query_rows));
      };
      Scalar* o = dlogit + static_cast<std::ptrdiff_t>(row) * Vp;
      if (h == H) {  // base rows
        for (index_t c = c0; c < c1; ++c) o[c] = r < query_rows ? at(r)[c] : Scalar(0);
      } else if (r >= query_rows) {  // a key row of head h: its rebased rows, one per query row
        for (index_t c = c0; c < c1; ++c) o[c] = 0;
        for (index_t q = 0; q < query_rows; ++q) {
          const Scalar* d = delta(q, r);
          for (index_t c = c0; c < c1; ++c) o[c] += d[c];
        }
      } else {  // a query row of head h: in the combined row, minus in every rebased row of it
        const Scalar* combined = at(r);
        for (index_t c = c0; c < c1; ++c) o[c] = combined[c];
        for (index_t key = query_rows; key < rows; ++key) {
          const Scalar* d = delta(r, key);
          for (index_t c = c0; c < c1; ++c) o[c] -= d[c];
        }
      }
    }
  };
  static void rebase_backward(const Scalar* drebased, index_t rows, index_t query_rows, Scalar* dlogit) {
    P::for_each_row((H + 1) * rows, kernels::padded_vocab<Shape, Scalar>,
                    RebaseRowBackward{drebased, dlogit, rows, query_rows});
  }

  // ---- tied unembedding: logits (M, V; row stride Vp) = rows (M, D) W_E^T -----------------------------
  static constexpr index_t Vp = kernels::padded_vocab<Shape, Scalar>;
  static void unembedding_forward(const Scalar* params, const Scalar* rows, index_t m, Scalar* logits) {
    GemmArgs<Scalar> g;
    g.m = m, g.n = V, g.k = D;
    g.a = rows, g.lda = D;
    g.b = params + L::token_embedding, g.ldb = D, g.trans_b = true;
    g.c = logits, g.ldc = Vp;
    P::gemm(g);
  }
  // dW_E = dlogits^T rows (written, or added with accumulate: W_E's first contribution may come in
  // tiles);  drows = dlogits W_E.  dlogits: (M, V; row stride Vp).
  static void unembedding_backward(const Scalar* params, const Scalar* rows, const Scalar* dlogits, index_t m,
                                   Scalar* grads, Scalar* drows, bool accumulate = false) {
    GemmArgs<Scalar> w;
    w.m = V, w.n = D, w.k = m, w.accumulate = accumulate;
    w.a = dlogits, w.lda = Vp, w.trans_a = true;
    w.b = rows, w.ldb = D;
    w.c = grads + L::token_embedding, w.ldc = D;
    P::gemm(w);
    GemmArgs<Scalar> r;
    r.m = m, r.n = D, r.k = V;
    r.a = dlogits, r.lda = Vp;
    r.b = params + L::token_embedding, r.ldb = D;
    r.c = drows, r.ldc = D;
    P::gemm(r);
  }
};

}  // namespace tinyattn
