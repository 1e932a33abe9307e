// tinyattn/layers/cross_entropy.hpp — the loss and accuracy of every scored position.
//
// Per row of logits (V_out) with target y (-1: not scored, loss 0, not counted):
//   loss    = log sum_c exp(l_c - max) - (l_y - max)          as torch's log_softmax + nll_loss
//   correct = (first argmax == y)                             as torch.argmax
//   dlogits = (softmax(l) - onehot(y)) * grad_scale           when asked (in place over the logits);
//             grad_scale = 1 / (scored positions of the whole batch) makes it the mean's gradient.
#pragma once

#include "tinyattn/backend/primitives.hpp"
#include "tinyattn/core/math.hpp"

namespace tinyattn::layers {

template <class Scalar>
struct CrossEntropyRow {
  Scalar* logits;          // (rows, V_out); becomes dlogits when `gradient`
  const index_t* targets;  // (rows)
  Scalar* loss;            // (rows)
  index_t* correct;        // (rows)
  index_t V_out;
  Scalar grad_scale;
  bool gradient;
  TINYATTN_HD void operator()(index_t r) const {
    Scalar* l = logits + static_cast<std::ptrdiff_t>(r) * V_out;
    const index_t y = targets[r];
    if (y < 0) {
      loss[r] = 0;
      correct[r] = 0;
      if (gradient)
        for (index_t c = 0; c < V_out; ++c) l[c] = 0;
      return;
    }
    // The maximum as a vectorized reduction, then the first index that holds it (torch.argmax's
    // choice): a running argmax is one long chain of dependent compares. NaNs never win either way.
    Scalar top = l[0];
    TINYATTN_SIMD_MAX(top)
    for (index_t c = 0; c < V_out; ++c) top = l[c] > top ? l[c] : top;
    index_t best = 0;
    for (index_t c = 0; c < V_out; ++c)
      if (l[c] == top) {
        best = c;
        break;
      }
    Scalar total = 0;  // a reduction in a fixed lane order, vectorized (math::exp is branch-free)
    TINYATTN_SIMD_SUM(total)
    for (index_t c = 0; c < V_out; ++c) total += math::exp(l[c] - top);
    loss[r] = math::log(total) - (l[y] - top);
    correct[r] = best == y ? 1 : 0;
    if (!gradient) return;
    TINYATTN_SIMD
    for (index_t c = 0; c < V_out; ++c) l[c] = math::exp(l[c] - top) / total * grad_scale;
    l[y] -= grad_scale;
  }
};

// loss and correct per row; with `gradient`, logits are replaced by d mean loss / d logits.
template <class Backend, class Scalar>
void cross_entropy_forward_backward(Scalar* logits, const index_t* targets, Scalar* loss, index_t* correct,
                                    index_t rows, index_t V_out, Scalar grad_scale, bool gradient) {
  Primitives<Backend>::for_each(rows,
                                CrossEntropyRow<Scalar>{logits, targets, loss, correct, V_out, grad_scale, gradient});
}

}  // namespace tinyattn::layers
