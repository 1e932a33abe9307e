// tinyattn/layers/embedding.hpp — token and positional embedding, and the residual-stream plumbing.
//
//   x[b, t] = W_E[token[b, t]] + W_pos[t]                      x (B, T, D)
// Backward: dW_E[v] += sum of dx over the rows whose token is v; dW_pos[t] += sum over b of dx[b, t].
// Many rows share a token, so dW_E is a gather: the rows of each token are listed once per batch (a
// CSR list built on the host when the batch is loaded, model/device_batch.hpp), and every token's row
// of dW_E sums its list in order — no atomics, the same bits for any thread count.
#pragma once

#include "tinyattn/backend/primitives.hpp"

namespace tinyattn::layers {

template <class Scalar>
struct EmbedRow {
  Scalar* x;
  const index_t* tokens;
  const Scalar* w_e;
  const Scalar* w_pos;
  index_t T, D;
  TINYATTN_HD void operator()(index_t row, index_t c0, index_t c1) const {
    const Scalar* e = w_e + static_cast<std::ptrdiff_t>(tokens[row]) * D;
    const Scalar* p = w_pos + static_cast<std::ptrdiff_t>(row % T) * D;
    Scalar* out = x + static_cast<std::ptrdiff_t>(row) * D;
    for (index_t c = c0; c < c1; ++c) out[c] = e[c] + p[c];
  }
};

// x (B, T, D) = W_E[tokens] + W_pos.   tokens (B, T), W_E (V, D), W_pos (T, D).
template <class Backend, class Scalar>
void embedding_forward(Scalar* x, const index_t* tokens, const Scalar* w_e, const Scalar* w_pos, index_t B, index_t T,
                       index_t D) {
  Primitives<Backend>::for_each_row(B * T, D, EmbedRow<Scalar>{x, tokens, w_e, w_pos, T, D});
}

template <class Scalar>
struct SumPositionColumn {  // dW_pos[t, c] += sum over b of dx[b, t, c]
  // Columns in groups of kGroup with the samples outermost, so each sample's row is read as one
  // contiguous run rather than once per column at a stride of T * D; every column still adds the
  // samples in order b = 0, 1, ... (the same bits as a sum per column).
  static constexpr index_t kGroup = 16;
  Scalar* dw_pos;
  const Scalar* dx;
  index_t B, T, D;
  TINYATTN_HD void operator()(index_t t, index_t c0, index_t c1) const {
    for (index_t g0 = c0; g0 < c1; g0 += kGroup) {
      const index_t n = c1 - g0 < kGroup ? c1 - g0 : kGroup;
      Scalar acc[kGroup] = {};
      for (index_t b = 0; b < B; ++b) {
        const Scalar* row = dx + (static_cast<std::ptrdiff_t>(b) * T + t) * D + g0;
        for (index_t j = 0; j < n; ++j) acc[j] += row[j];
      }
      for (index_t j = 0; j < n; ++j) dw_pos[static_cast<std::ptrdiff_t>(t) * D + g0 + j] += acc[j];
    }
  }
};

// dW_E (V, D) += dx rows gathered by token (token_begin (V + 1), token_row (B T): the rows of token v
// are token_row[token_begin[v] .. token_begin[v + 1]), ascending); dW_pos (T, D) += sum over b of dx (B, T, D).
template <class Backend, class Scalar>
void embedding_backward(Scalar* dw_e, Scalar* dw_pos, const Scalar* dx, const index_t* token_begin,
                        const index_t* token_row, index_t B, index_t T, index_t V, index_t D) {
  GatherSumArgs<Scalar> g;
  g.segments = V, g.width = D, g.begin = token_begin, g.entry_item = token_row;
  g.src = dx, g.src_ld = D, g.out = dw_e, g.accumulate = true;
  Primitives<Backend>::gather_sum_rows(g);
  Primitives<Backend>::for_each_row(T, D, SumPositionColumn<Scalar>{dw_pos, dx, B, T, D});
}

// ---- the residual stream ----------------------------------------------------------------------------
template <class Scalar>
struct AddRows {  // out[r] = a[r] + b[r]
  Scalar* out;
  const Scalar* a;
  const Scalar* b;
  index_t width;
  TINYATTN_HD void operator()(index_t r, index_t c0, index_t c1) const {
    const std::ptrdiff_t at = static_cast<std::ptrdiff_t>(r) * width;
    for (index_t c = c0; c < c1; ++c) out[at + c] = a[at + c] + b[at + c];
  }
};

// out (rows, width) = a + b.
template <class Backend, class Scalar>
void residual_forward(Scalar* out, const Scalar* a, const Scalar* b, index_t rows, index_t width) {
  Primitives<Backend>::for_each_row(rows, width, AddRows<Scalar>{out, a, b, width});
}

template <class Scalar>
struct CopyLastPositions {  // out[b, i] = in[b, T - Tq + i]
  Scalar* out;
  const Scalar* in;
  index_t T, Tq, width;
  TINYATTN_HD void operator()(index_t r, index_t c0, index_t c1) const {  // r = (b, i)
    const Scalar* src = in + (static_cast<std::ptrdiff_t>(r / Tq) * T + T - Tq + r % Tq) * width;
    for (index_t c = c0; c < c1; ++c) out[static_cast<std::ptrdiff_t>(r) * width + c] = src[c];
  }
};

template <class Scalar>
struct AddToLastPositions {  // din[b, T - Tq + i] += dout[b, i]
  Scalar* din;
  const Scalar* dout;
  index_t T, Tq, width;
  TINYATTN_HD void operator()(index_t r, index_t c0, index_t c1) const {
    Scalar* dst = din + (static_cast<std::ptrdiff_t>(r / Tq) * T + T - Tq + r % Tq) * width;
    for (index_t c = c0; c < c1; ++c) dst[c] += dout[static_cast<std::ptrdiff_t>(r) * width + c];
  }
};

// The rows of the last Tq positions: out (B, Tq, width) = in (B, T, width)[:, T - Tq:]. When the loss
// reads only those positions, the last block needs its queries there only.
template <class Backend, class Scalar>
void last_positions_forward(Scalar* out, const Scalar* in, index_t B, index_t T, index_t Tq, index_t width) {
  Primitives<Backend>::for_each_row(B * Tq, width, CopyLastPositions<Scalar>{out, in, T, Tq, width});
}
// din (B, T, width)[:, T - Tq:] += dout (B, Tq, width).
template <class Backend, class Scalar>
void last_positions_backward(Scalar* din, const Scalar* dout, index_t B, index_t T, index_t Tq, index_t width) {
  Primitives<Backend>::for_each_row(B * Tq, width, AddToLastPositions<Scalar>{din, dout, T, Tq, width});
}

}  // namespace tinyattn::layers
