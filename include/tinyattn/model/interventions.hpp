// tinyattn/model/interventions.hpp — changes to a forward pass: ablating heads, patching activations.
//
//   tinyattn::Interventions<float> iv;
//   iv.zero_ablate(/*layer*/ 0, /*head*/ 1);                       // head 1 of block 0 contributes nothing
//   iv.mean_ablate(0, 0, tinyattn::head_mean(cache, 0, 0));        // head 0 outputs its mean instead
//   iv.patch_head(0, 1, source_cache);                             // head 1's hook_z from another batch
//   iv.patch_residual(/*layer*/ 0, /*position*/ 2, source_cache);  // blocks.0.hook_resid_pre at position 2
//   auto cache = net.inspect(batch, {}, iv);                        // also net.evaluate, net.last_logits
//
// A head is ablated or patched at hook_z (B, T, H, dh), as TransformerLens users usually do: the head's
// output z_h W_O[h] then changes with it, and zeroing z_h removes the head's term from hook_attn_out
// exactly (b_O stays). Mean ablation replaces z_h at every position t by the stated mean m[t] (T, dh) —
// head_mean() gives the mean over a cache's samples. A residual patch replaces blocks.{l}.hook_resid_pre
// at one position by the source's, before block l reads it. Patch sources hold one row per sample of the
// batch they are applied to (the same N). Interventions apply to forward passes only (inspect, evaluate,
// last_logits), never to training.
#pragma once

#include <string>
#include <vector>

#include "tinyattn/core/config.hpp"
#include "tinyattn/model/activation_cache.hpp"

namespace tinyattn {

template <class Scalar>
struct Interventions {
  enum class HeadChange { zero, mean, patch };
  struct Head {
    index_t layer, head;
    HeadChange change;
    std::vector<Scalar> values;  // mean: (T, dh); patch: (N, T, dh); zero: none
  };
  struct Residual {
    index_t layer, position;
    std::vector<Scalar> values;  // (N, D)
  };
  std::vector<Head> heads;
  std::vector<Residual> residuals;

  bool empty() const { return heads.empty() && residuals.empty(); }

  Interventions& zero_ablate(index_t layer, index_t head) {
    heads.push_back({layer, head, HeadChange::zero, {}});
    return *this;
  }
  // mean: (T, dh), the value z_h takes at each position.
  Interventions& mean_ablate(index_t layer, index_t head, std::vector<Scalar> mean) {
    heads.push_back({layer, head, HeadChange::mean, std::move(mean)});
    return *this;
  }
  // The head's hook_z from `source` (a cache of a batch of the same size with blocks.{layer}.attn.hook_z).
  Interventions& patch_head(index_t layer, index_t head, const ActivationCache<Scalar>& source) {
    const CachedTensor<Scalar>& z = source[ActivationCache<Scalar>::block(layer) + "attn.hook_z"];  // (N, T, H, dh)
    require(head >= 0 && head < z.shape[2], "Interventions::patch_head: head ", head, " outside [0, ", z.shape[2], ")");
    const std::size_t N = static_cast<std::size_t>(z.shape[0]), T = static_cast<std::size_t>(z.shape[1]),
                      H = static_cast<std::size_t>(z.shape[2]), dh = static_cast<std::size_t>(z.shape[3]);
    std::vector<Scalar> values(N * T * dh);
    for (std::size_t r = 0; r < N * T; ++r)
      for (std::size_t e = 0; e < dh; ++e)
        values[r * dh + e] = z.values[(r * H + static_cast<std::size_t>(head)) * dh + e];
    heads.push_back({layer, head, HeadChange::patch, std::move(values)});
    return *this;
  }
  // blocks.{layer}.hook_resid_pre at `position` from `source` (same batch size, with that activation).
  Interventions& patch_residual(index_t layer, index_t position, const ActivationCache<Scalar>& source) {
    const CachedTensor<Scalar>& x = source[ActivationCache<Scalar>::block(layer) + "hook_resid_pre"];  // (N, T, D)
    require(position >= 0 && position < x.shape[1], "Interventions::patch_residual: position ", position,
            " outside [0, ", x.shape[1], ")");
    const std::size_t N = static_cast<std::size_t>(x.shape[0]), T = static_cast<std::size_t>(x.shape[1]),
                      D = static_cast<std::size_t>(x.shape[2]);
    std::vector<Scalar> values(N * D);
    for (std::size_t n = 0; n < N; ++n)
      for (std::size_t d = 0; d < D; ++d)
        values[n * D + d] = x.values[(n * T + static_cast<std::size_t>(position)) * D + d];
    residuals.push_back({layer, position, std::move(values)});
    return *this;
  }
};

// The mean of head `head`'s hook_z over the cache's samples, per position: (T, dh), for mean ablation.
template <class Scalar>
std::vector<Scalar> head_mean(const ActivationCache<Scalar>& cache, index_t layer, index_t head) {
  const CachedTensor<Scalar>& z = cache[ActivationCache<Scalar>::block(layer) + "attn.hook_z"];  // (N, T, H, dh)
  const std::size_t N = static_cast<std::size_t>(z.shape[0]), T = static_cast<std::size_t>(z.shape[1]),
                    H = static_cast<std::size_t>(z.shape[2]), dh = static_cast<std::size_t>(z.shape[3]);
  require(head >= 0 && static_cast<std::size_t>(head) < H, "head_mean: head ", head, " outside [0, ", H, ")");
  require(N > 0, "head_mean: the cache holds no samples");
  std::vector<double> sum(T * dh, 0.0);
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t e = 0; e < dh; ++e)
        sum[t * dh + e] += z.values[((n * T + t) * H + static_cast<std::size_t>(head)) * dh + e];
  std::vector<Scalar> mean(T * dh);
  for (std::size_t i = 0; i < mean.size(); ++i) mean[i] = static_cast<Scalar>(sum[i] / static_cast<double>(N));
  return mean;
}

}  // namespace tinyattn
