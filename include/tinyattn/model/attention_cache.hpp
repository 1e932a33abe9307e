// tinyattn/model/attention_cache.hpp — the activations of a forward pass, on the host, for looking
// inside the network (plots, probes, interpretability).
#pragma once

#include <cstddef>
#include <vector>

#include "tinyattn/core/config.hpp"

namespace tinyattn {

// Which activations inspect() keeps; logits for every position of 32,768 samples are 68 MB, the
// attention pattern alone 4 MB, so plots ask only for what they draw.
enum CacheParts : unsigned {
  cache_embedded = 1u << 0,       // (N, T, D)     x = W_E[token] + W_pos[position]
  cache_scores = 1u << 1,         // (N, H, T, T)  q . k, before the 1/sqrt(dh) scale (as plotted)
  cache_pattern = 1u << 2,        // (N, H, T, T)  softmax(scores / sqrt(dh)) over keys
  cache_attention_out = 1u << 3,  // (N, T, D)     sum over heads of z_h W_O[h]
  cache_residual = 1u << 4,       // (N, T, D)     x + attention_out
  cache_logits = 1u << 5,         // (N, T, V)     residual W_E^T
  cache_all = (1u << 6) - 1,
};

template <class Scalar>
struct AttentionCache {
  index_t samples = 0, vocab = 0, d_model = 0, heads = 0, context = 0;
  unsigned parts = 0;
  std::vector<Scalar> embedded, scores, pattern, attention_out, residual, logits;  // shapes above

  // Element accessors; n sample, h head, q query position, k key position, t position.
  Scalar score(index_t n, index_t h, index_t q, index_t k) const { return scores[attention_index(n, h, q, k)]; }
  Scalar weight(index_t n, index_t h, index_t q, index_t k) const { return pattern[attention_index(n, h, q, k)]; }
  const Scalar* logits_at(index_t n, index_t t) const {
    return logits.data() + (static_cast<std::size_t>(n) * context + t) * vocab;
  }
  const Scalar* residual_at(index_t n, index_t t) const {
    return residual.data() + (static_cast<std::size_t>(n) * context + t) * d_model;
  }

 private:
  std::size_t attention_index(index_t n, index_t h, index_t q, index_t k) const {
    return ((static_cast<std::size_t>(n) * heads + h) * context + q) * context + k;
  }
};

}  // namespace tinyattn
