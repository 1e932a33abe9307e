// tinyattn/layers/layer_norm.hpp — LayerNorm over the last dimension, as TransformerLens's LayerNorm.
//
//   xc = x - mean(x);  scale = sqrt(mean(xc^2) + eps);  out = xc / scale * w + b        per row of D
// (biased variance, eps 1e-5; `scale` is TransformerLens's hook_scale). Backward, with xhat = xc / scale:
//   dxhat = dout * w
//   dx   += (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / scale
//   dw   += sum over rows of dout * xhat;   db += sum over rows of dout
#pragma once

#include "tinyattn/backend/primitives.hpp"
#include "tinyattn/core/math.hpp"

namespace tinyattn::layers {

inline constexpr double kLayerNormEps = 1e-5;

template <class Scalar>
struct LayerNormRow {
  Scalar* out;
  Scalar* mean;
  Scalar* scale;
  const Scalar* x;
  const Scalar* w;
  const Scalar* b;
  index_t D;
  TINYATTN_HD void operator()(index_t r) const {
    const Scalar* in = x + static_cast<std::ptrdiff_t>(r) * D;
    Scalar* o = out + static_cast<std::ptrdiff_t>(r) * D;
    Scalar sum = 0;
    for (index_t c = 0; c < D; ++c) sum += in[c];
    const Scalar m = sum / static_cast<Scalar>(D);
    Scalar squares = 0;
    for (index_t c = 0; c < D; ++c) squares += (in[c] - m) * (in[c] - m);
    const Scalar s = math::sqrt(squares / static_cast<Scalar>(D) + static_cast<Scalar>(kLayerNormEps));
    for (index_t c = 0; c < D; ++c) o[c] = (in[c] - m) / s * w[c] + b[c];
    mean[r] = m;
    scale[r] = s;
  }
};

// out (rows, D) = LayerNorm(x (rows, D)) with weight w (D) and bias b (D); keeps mean and scale (rows).
template <class Backend, class Scalar>
void layer_norm_forward(Scalar* out, Scalar* mean, Scalar* scale, const Scalar* x, const Scalar* w, const Scalar* b,
                        index_t rows, index_t D) {
  Primitives<Backend>::for_each(rows, LayerNormRow<Scalar>{out, mean, scale, x, w, b, D});
}

template <class Scalar>
struct LayerNormRowBackward {
  Scalar* dx;
  const Scalar* dout;
  const Scalar* x;
  const Scalar* mean;
  const Scalar* scale;
  const Scalar* w;
  index_t D;
  TINYATTN_HD void operator()(index_t r) const {
    const std::ptrdiff_t at = static_cast<std::ptrdiff_t>(r) * D;
    const Scalar m = mean[r], s = scale[r];
    Scalar sum_dxhat = 0, sum_dxhat_xhat = 0;
    for (index_t c = 0; c < D; ++c) {
      const Scalar dxhat = dout[at + c] * w[c];
      sum_dxhat += dxhat;
      sum_dxhat_xhat += dxhat * ((x[at + c] - m) / s);
    }
    const Scalar mean_dxhat = sum_dxhat / static_cast<Scalar>(D);
    const Scalar mean_dxhat_xhat = sum_dxhat_xhat / static_cast<Scalar>(D);
    for (index_t c = 0; c < D; ++c) {
      const Scalar xhat = (x[at + c] - m) / s;
      dx[at + c] += (dout[at + c] * w[c] - mean_dxhat - xhat * mean_dxhat_xhat) / s;
    }
  }
};

template <class Scalar>
struct LayerNormParameterColumn {
  Scalar* dw;
  Scalar* db;
  const Scalar* dout;
  const Scalar* x;
  const Scalar* mean;
  const Scalar* scale;
  index_t rows, D;
  TINYATTN_HD void operator()(index_t c) const {
    Scalar acc_w = 0, acc_b = 0;
    for (index_t r = 0; r < rows; ++r) {
      const std::ptrdiff_t at = static_cast<std::ptrdiff_t>(r) * D + c;
      acc_w += dout[at] * ((x[at] - mean[r]) / scale[r]);
      acc_b += dout[at];
    }
    dw[c] += acc_w;
    db[c] += acc_b;
  }
};

// dx (rows, D) += the input gradient; dw (D), db (D) += the parameter gradients. x, mean, scale: as the
// forward saw and kept them.
template <class Backend, class Scalar>
void layer_norm_backward(Scalar* dx, Scalar* dw, Scalar* db, const Scalar* dout, const Scalar* x, const Scalar* mean,
                         const Scalar* scale, const Scalar* w, index_t rows, index_t D) {
  Primitives<Backend>::for_each(rows, LayerNormRowBackward<Scalar>{dx, dout, x, mean, scale, w, D});
  Primitives<Backend>::for_each(D, LayerNormParameterColumn<Scalar>{dw, db, dout, x, mean, scale, rows, D});
}

}  // namespace tinyattn::layers
