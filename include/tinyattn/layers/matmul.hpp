// tinyattn/layers/matmul.hpp — the three matrix products every linear layer is made of, and bias rows.
//
// A linear layer y = x W + b, with x (rows, k), W (k, n), b (n), y (rows, n), has the backward
//   dx = dy W^T        dW += x^T dy        db += sum over rows of dy
// Every matrix is row-major with its own leading dimension (elements between rows), so a product can
// read every T-th row of a (B, T, D) buffer, or write one head's columns of a (rows, H * dh) buffer.
// Weight gradients accumulate (+=): a chunk's gradient buffer is zeroed once, then every layer adds.
#pragma once

#include "tinyattn/backend/primitives.hpp"

namespace tinyattn::layers {

// out (rows, n) = in (rows, k) W (k, n), or += with `accumulate`.
template <class Backend, class Scalar>
void matmul_forward(Scalar* out, index_t ld_out, const Scalar* in, index_t ld_in, const Scalar* w, index_t ld_w,
                    index_t rows, index_t k, index_t n, bool accumulate = false) {
  GemmArgs<Scalar> g;
  g.m = rows, g.n = n, g.k = k, g.accumulate = accumulate;
  g.a = in, g.lda = ld_in;
  g.b = w, g.ldb = ld_w;
  g.c = out, g.ldc = ld_out;
  Primitives<Backend>::gemm(g);
}

// out (rows, n) = in (rows, k) W^T with W stored (n, k) — the tied unembedding's x W_E^T.
template <class Backend, class Scalar>
void matmul_forward_transposed(Scalar* out, index_t ld_out, const Scalar* in, index_t ld_in, const Scalar* w,
                               index_t ld_w, index_t rows, index_t k, index_t n) {
  GemmArgs<Scalar> g;
  g.m = rows, g.n = n, g.k = k;
  g.a = in, g.lda = ld_in;
  g.b = w, g.ldb = ld_w, g.trans_b = true;
  g.c = out, g.ldc = ld_out;
  Primitives<Backend>::gemm(g);
}

// din (rows, k) = dout (rows, n) W^T, or += with `accumulate`.
template <class Backend, class Scalar>
void matmul_backward_input(Scalar* din, index_t ld_din, const Scalar* dout, index_t ld_dout, const Scalar* w,
                           index_t ld_w, index_t rows, index_t k, index_t n, bool accumulate) {
  GemmArgs<Scalar> g;
  g.m = rows, g.n = k, g.k = n, g.accumulate = accumulate;
  g.a = dout, g.lda = ld_dout;
  g.b = w, g.ldb = ld_w, g.trans_b = true;
  g.c = din, g.ldc = ld_din;
  Primitives<Backend>::gemm(g);
}

// dW (k, n) += in^T (k, rows) dout (rows, n).
template <class Backend, class Scalar>
void matmul_backward_weight(Scalar* dw, index_t ld_dw, const Scalar* in, index_t ld_in, const Scalar* dout,
                            index_t ld_dout, index_t rows, index_t k, index_t n) {
  GemmArgs<Scalar> g;
  g.m = k, g.n = n, g.k = rows, g.accumulate = true;
  g.a = in, g.lda = ld_in, g.trans_a = true;
  g.b = dout, g.ldb = ld_dout;
  g.c = dw, g.ldc = ld_dw;
  Primitives<Backend>::gemm(g);
}

// ---- biases --------------------------------------------------------------------------------------------
template <class Scalar>
struct AddBiasRow {
  Scalar* out;
  index_t ld;
  const Scalar* bias;
  TINYATTN_HD void operator()(index_t r, index_t c0, index_t c1) const {
    Scalar* row = out + static_cast<std::ptrdiff_t>(r) * ld;
    for (index_t c = c0; c < c1; ++c) row[c] += bias[c];
  }
};

// out (rows, n) += b (n) on every row.
template <class Backend, class Scalar>
void bias_forward(Scalar* out, index_t ld, const Scalar* bias, index_t rows, index_t n) {
  Primitives<Backend>::for_each_row(rows, n, AddBiasRow<Scalar>{out, ld, bias});
}

// Column sums, 16 adjacent columns per item (contiguous loads), each column's rows added in order:
// deterministic for any thread count.
template <class Scalar>
struct SumColumns {
  static constexpr index_t kBlock = 16;
  Scalar* out;
  const Scalar* in;
  index_t ld, rows, n;
  TINYATTN_HD void operator()(index_t block) const {
    const index_t c0 = block * kBlock, width = n - c0 < kBlock ? n - c0 : kBlock;
    Scalar acc[kBlock];
    for (index_t c = 0; c < kBlock; ++c) acc[c] = 0;
    if (width == kBlock) {  // a fixed trip count: the column loop vectorizes
      for (index_t r = 0; r < rows; ++r) {
        const Scalar* row = in + static_cast<std::ptrdiff_t>(r) * ld + c0;
        TINYATTN_SIMD
        for (index_t c = 0; c < kBlock; ++c) acc[c] += row[c];
      }
    } else {
      for (index_t r = 0; r < rows; ++r) {
        const Scalar* row = in + static_cast<std::ptrdiff_t>(r) * ld + c0;
        for (index_t c = 0; c < width; ++c) acc[c] += row[c];
      }
    }
    for (index_t c = 0; c < width; ++c) out[c0 + c] += acc[c];
  }
};

// db (n) += sum over rows of dout (rows, n).
template <class Backend, class Scalar>
void bias_backward(Scalar* dbias, const Scalar* dout, index_t ld, index_t rows, index_t n) {
  Primitives<Backend>::for_each((n + SumColumns<Scalar>::kBlock - 1) / SumColumns<Scalar>::kBlock,
                                SumColumns<Scalar>{dbias, dout, ld, rows, n});
}

}  // namespace tinyattn::layers
