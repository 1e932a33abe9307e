// tinyattn/model/activation_cache.hpp — the activations of a forward pass on the host, under
// TransformerLens's ActivationCache names, for looking inside a network.
//
//   auto cache = net.inspect(batch);                                  // every activation
//   auto cache = net.inspect(batch, {"blocks.0.attn.hook_pattern"});  // only what is asked for
//   const auto& p = cache["blocks.0.attn.hook_pattern"];             // p.shape {B, H, T, T}, p.values
//   float w = cache.weight(/*sample*/ 0, /*head*/ 1, /*query*/ 3, /*key*/ 2);   // layer 0's pattern
//
// Names and shapes (B samples, T positions, H heads, dh d_head, M d_mlp; [..] only where the model has
// that part):
//   hook_embed                       (B, T, D)     W_E[token]
//   hook_pos_embed                   (B, T, D)     W_pos[position]
//   blocks.{l}.hook_resid_pre        (B, T, D)     the block's input (block 0: hook_embed + hook_pos_embed)
//   blocks.{l}.ln1.hook_scale        (B, T, 1)     sqrt(var + eps)                          [layer_norm]
//   blocks.{l}.ln1.hook_normalized   (B, T, D)     LayerNorm's output                       [layer_norm]
//   blocks.{l}.attn.hook_q, hook_k, hook_v  (B, T, H, dh)
//   blocks.{l}.attn.hook_attn_scores (B, H, T, T)  q.k / sqrt(dh), masked keys -inf (as TransformerLens)
//   blocks.{l}.attn.scores           (B, H, T, T)  q.k, unscaled and unmasked (as the notebook plots and
//                                                  the peer's fixtures store them)
//   blocks.{l}.attn.hook_pattern     (B, H, T, T)  softmax of hook_attn_scores over keys
//   blocks.{l}.attn.hook_z           (B, T, H, dh) pattern-weighted values
//   blocks.{l}.attn.hook_result      (B, T, H, D)  each head's output z_h W_O[h] (without b_O)
//   blocks.{l}.hook_attn_out         (B, T, D)     sum over heads of hook_result, plus b_O
//   blocks.{l}.hook_resid_mid        (B, T, D)     hook_resid_pre + hook_attn_out            [mlp]
//   blocks.{l}.ln2.hook_scale, ln2.hook_normalized                                  [layer_norm and mlp]
//   blocks.{l}.mlp.hook_pre, hook_post  (B, T, M)  before and after the activation          [mlp]
//   blocks.{l}.hook_mlp_out          (B, T, D)                                               [mlp]
//   blocks.{l}.hook_resid_post       (B, T, D)     the block's output
//   ln_final.hook_scale, ln_final.hook_normalized                                          [layer_norm]
//   logits                           (B, T, V_out)
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tinyattn/core/config.hpp"

namespace tinyattn {

template <class Scalar>
struct CachedTensor {
  std::vector<std::int64_t> shape;
  std::vector<Scalar> values;  // row-major
};

// For code written against the reference model's cache (one layer): which parts inspect() keeps.
enum CacheParts : unsigned {
  cache_embedded = 1u << 0,       // blocks.0.hook_resid_pre      (N, T, D)
  cache_scores = 1u << 1,         // blocks.0.attn.scores         (N, H, T, T), unscaled
  cache_pattern = 1u << 2,        // blocks.0.attn.hook_pattern   (N, H, T, T)
  cache_attention_out = 1u << 3,  // blocks.0.hook_attn_out       (N, T, D)
  cache_residual = 1u << 4,       // the last block's hook_resid_post (N, T, D)
  cache_logits = 1u << 5,         // logits                       (N, T, V_out)
  cache_all = (1u << 6) - 1,
};

template <class Scalar>
class ActivationCache {
 public:
  index_t samples = 0, context = 0, heads = 0, layers = 0, d_model = 0, vocab_out = 0;

  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // The tensor `name`; throws tinyattn::Error naming what the cache holds when it is missing.
  const CachedTensor<Scalar>& operator[](const std::string& name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) {
      std::string held;
      for (const auto& [key, value] : tensors_) held += (held.empty() ? "" : ", ") + key;
      throw Error("ActivationCache: no '" + name + "' (it holds: " + (held.empty() ? "nothing" : held) + ")");
    }
    return it->second;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [key, value] : tensors_) out.push_back(key);
    return out;
  }
  CachedTensor<Scalar>& insert(const std::string& name, std::vector<std::int64_t> shape) {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    CachedTensor<Scalar>& t = tensors_[name];
    t.shape = std::move(shape);
    t.values.assign(n, Scalar(0));
    return t;
  }
  CachedTensor<Scalar>* find(const std::string& name) {
    const auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
  }

  // ---- element accessors (layer 0 unless given) ----------------------------------------------------
  // softmax weight of key k for query q, head h, sample n (hook_pattern)
  Scalar weight(index_t n, index_t h, index_t q, index_t k, index_t layer = 0) const {
    return (*this)[block(layer) + "attn.hook_pattern"].values[attention_index(n, h, q, k)];
  }
  // q . k, unscaled (blocks.{l}.attn.scores)
  Scalar score(index_t n, index_t h, index_t q, index_t k, index_t layer = 0) const {
    return (*this)[block(layer) + "attn.scores"].values[attention_index(n, h, q, k)];
  }
  const Scalar* logits_at(index_t n, index_t t) const {
    return (*this)["logits"].values.data() + (static_cast<std::size_t>(n) * context + t) * vocab_out;
  }
  // the final residual stream (the last block's hook_resid_post)
  const Scalar* residual_at(index_t n, index_t t) const {
    return (*this)[block(layers - 1) + "hook_resid_post"].values.data() +
           (static_cast<std::size_t>(n) * context + t) * d_model;
  }

  static std::string block(index_t layer) { return "blocks." + std::to_string(layer) + "."; }

 private:
  std::size_t attention_index(index_t n, index_t h, index_t q, index_t k) const {
    return ((static_cast<std::size_t>(n) * heads + h) * context + q) * context + k;
  }
  std::map<std::string, CachedTensor<Scalar>> tensors_;
};

// The reference experiment's name for it.
template <class Scalar>
using AttentionCache = ActivationCache<Scalar>;

// The cache names a CacheParts mask stands for, in a model of `layers` blocks.
inline std::vector<std::string> cache_names(unsigned parts, index_t layers) {
  std::vector<std::string> out;
  if (parts & cache_embedded) out.push_back("blocks.0.hook_resid_pre");
  if (parts & cache_scores) out.push_back("blocks.0.attn.scores");
  if (parts & cache_pattern) out.push_back("blocks.0.attn.hook_pattern");
  if (parts & cache_attention_out) out.push_back("blocks.0.hook_attn_out");
  if (parts & cache_residual) out.push_back("blocks." + std::to_string(layers - 1) + ".hook_resid_post");
  if (parts & cache_logits) out.push_back("logits");
  return out;
}

}  // namespace tinyattn
