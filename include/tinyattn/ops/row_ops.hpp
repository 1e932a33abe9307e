// tinyattn/ops/row_ops.hpp — the reductions over one row that per-sample kernels need, as a policy.
//
// A kernel (model/sample_kernels.hpp) is written once against this interface; each backend names the
// implementation it runs (Primitives<B>::row_ops):
//   GenericRowOps   plain loops, TINYATTN_HD: every backend can run it (one GPU thread per row)
//   EigenRowOps     the CPU backend's, on Eigen fixed-size maps (tinyattn/backend/cpu.hpp): Eigen keeps
//                   reductions in vector registers and vectorizes exp
//
//   dot<N>(a, b)                               a . b over N entries
//   exp<N>(x, y)                               y[i] = exp(x[i]) for i < N (N small: the H*T attention logits)
//   cross_entropy<V, Vp>(logits, target, s, d) loss and hit of a padded logits row (Vp >= V entries,
//                                              those past V ignored); with d non-null writes
//                                              d = (softmax - onehot(target)) * s, zero past V
#pragma once

#include "tinyattn/core/config.hpp"
#include "tinyattn/core/math.hpp"

namespace tinyattn {

struct CrossEntropyResult {
  double loss;   // logsumexp(logits) - logits[target]; NaN when any logit is NaN
  bool correct;  // first argmax == target, as torch.argmax
};

struct GenericRowOps {
  template <index_t N, class Scalar>
  TINYATTN_HD static TINYATTN_FORCEINLINE Scalar dot(const Scalar* a, const Scalar* b) {
    Scalar acc = 0;
    for (index_t i = 0; i < N; ++i) acc += a[i] * b[i];
    return acc;
  }

  template <index_t N, class Scalar>
  TINYATTN_HD static TINYATTN_FORCEINLINE void exp(const Scalar* x, Scalar* y) {
    for (index_t i = 0; i < N; ++i) y[i] = math::exp(x[i]);
  }

  template <index_t V, index_t Vp, class Scalar>
  TINYATTN_HD static TINYATTN_FORCEINLINE CrossEntropyResult cross_entropy(const Scalar* logits, index_t target,
                                                                           Scalar grad_scale, Scalar* dlogits) {
    Scalar top = logits[0];
    index_t best = 0;
    for (index_t c = 1; c < V; ++c) {
      if (logits[c] > top) {
        top = logits[c];
        best = c;
      }
    }
    Scalar total = 0;
    for (index_t c = 0; c < V; ++c) {
      const Scalar e = math::exp(logits[c] - top);
      if (dlogits) dlogits[c] = e;
      total += e;
    }
    if (dlogits) {
      const Scalar inv_total = Scalar(1) / total;
      for (index_t c = 0; c < V; ++c) dlogits[c] = (dlogits[c] * inv_total - (c == target ? Scalar(1) : Scalar(0))) * grad_scale;
      for (index_t c = V; c < Vp; ++c) dlogits[c] = 0;
    }
    const Scalar loss = math::log(total) + top - logits[target];
    return {static_cast<double>(loss), best == target};
  }
};

}  // namespace tinyattn
