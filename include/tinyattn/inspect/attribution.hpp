// tinyattn/inspect/attribution.hpp — direct logit attribution: how much each head, each MLP, the
// embeddings and the biases add to every logit at the last position.
//
// The final residual stream is a sum of the components written into it: the token and positional
// embeddings, every head's output (hook_result), every attention bias b_O, every MLP's output. The
// unembedding is linear, so each component's image through it is its share of the logits; the constant
// b_U (and, with a final LayerNorm, its bias through W_U) is one more component. With a final LayerNorm
// each component is centred and divided by the LayerNorm's scale of that sample (hook_scale, frozen, as
// TransformerLens's apply_ln_to_stack does) before the unembedding. The shares add up to the logits.
#pragma once

#include <string>
#include <vector>

#include "tinyattn/model/transformer.hpp"

namespace tinyattn {

template <class Scalar>
struct LogitAttribution {
  index_t samples = 0, vocab_out = 0;   // vocab_out = 1 when only each sample's target logit was asked for
  std::vector<std::string> components;  // "embed", "pos_embed", "L0H1", "L0 b_O", "L0 mlp", "bias"
  std::vector<double> values;           // (components, samples, V_out)
  const double* of(std::size_t component, index_t sample) const {
    return values.data() +
           (component * static_cast<std::size_t>(samples) + static_cast<std::size_t>(sample)) * vocab_out;
  }
  std::size_t index_of(const std::string& name) const {
    for (std::size_t i = 0; i < components.size(); ++i)
      if (components[i] == name) return i;
    throw Error("LogitAttribution: no component '" + name + "'");
  }
};

// The direct logit attribution of every component at the last position of each sample of `batch`: to
// every logit, or (target_only) to each sample's target logit alone (then vocab_out = 1).
template <class Net>
LogitAttribution<typename Net::scalar_type> direct_logit_attribution(const Net& net, const TokenBatch& batch,
                                                                     bool target_only = false) {
  using Arch = typename Net::Architecture;
  using Scalar = typename Net::scalar_type;
  constexpr index_t T = Net::context, D = Net::d_model, H = Net::heads, V_out = Net::vocab_out, L = Net::layers;
  std::vector<std::string> names{"hook_embed", "hook_pos_embed"};
  for (index_t l = 0; l < L; ++l) {
    names.push_back("blocks." + std::to_string(l) + ".attn.hook_result");
    if (Arch::has_mlp) names.push_back("blocks." + std::to_string(l) + ".hook_mlp_out");
  }
  if (Arch::layer_norm) names.push_back("ln_final.hook_scale");
  const auto cache = net.inspect(batch, names);
  const index_t N = batch.size();
  const std::vector<Scalar> w_e = net.tensor("embed.W_E");
  const std::vector<Scalar> w_u = Arch::tied ? std::vector<Scalar>{} : net.tensor("unembed.W_U");
  std::vector<Scalar> ln_w, ln_b;
  if constexpr (Arch::layer_norm) ln_w = net.tensor("ln_final.w"), ln_b = net.tensor("ln_final.b");
  const auto unembed_weight = [&](index_t d, index_t c) -> double {
    return Arch::tied ? w_e[static_cast<std::size_t>(c) * D + d] : w_u[static_cast<std::size_t>(d) * V_out + c];
  };

  require(!target_only || batch.has_targets(), "direct_logit_attribution: target_only needs targets");
  LogitAttribution<Scalar> out;
  out.samples = N, out.vocab_out = target_only ? 1 : V_out;
  const auto columns = [&](index_t n, auto&& each) {  // the logits asked for of sample n
    if (target_only)
      each(batch.last_target(n));
    else
      for (index_t c = 0; c < V_out; ++c) each(c);
  };
  // Each component's residual vector (D) of sample n at the last position, by name.
  std::vector<std::pair<std::string, std::vector<double>>> parts;  // (component, (N, D))
  const auto last = [&](const std::string& hook, index_t width, index_t offset, index_t stride) {
    std::vector<double> v(static_cast<std::size_t>(N) * D);
    const auto& a = cache[hook].values;
    for (index_t n = 0; n < N; ++n)
      for (index_t d = 0; d < D; ++d)
        v[static_cast<std::size_t>(n) * D + d] = a[(static_cast<std::size_t>(n) * T + T - 1) * stride + offset + d];
    (void)width;
    return v;
  };
  parts.emplace_back("embed", last("hook_embed", D, 0, D));
  parts.emplace_back("pos_embed", last("hook_pos_embed", D, 0, D));
  for (index_t l = 0; l < L; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    for (index_t h = 0; h < H; ++h)
      parts.emplace_back("L" + std::to_string(l) + "H" + std::to_string(h),
                         last(b + "attn.hook_result", D, h * D, H * D));
    if constexpr (Arch::trainable_biases) {
      const std::vector<Scalar> b_o = net.tensor(b + "attn.b_O");
      std::vector<double> v(static_cast<std::size_t>(N) * D);
      for (index_t n = 0; n < N; ++n)
        for (index_t d = 0; d < D; ++d) v[static_cast<std::size_t>(n) * D + d] = b_o[static_cast<std::size_t>(d)];
      parts.emplace_back("L" + std::to_string(l) + " b_O", std::move(v));
    }
    if constexpr (Arch::has_mlp)
      parts.emplace_back("L" + std::to_string(l) + " mlp", last(b + "hook_mlp_out", D, 0, D));
  }
  // Through the final LayerNorm (centred, divided by the sample's frozen scale, times w), then W_U.
  for (auto& [name, v] : parts) {
    out.components.push_back(name);
    for (index_t n = 0; n < N; ++n) {
      double* x = v.data() + static_cast<std::size_t>(n) * D;
      if constexpr (Arch::layer_norm) {
        double mean = 0;
        for (index_t d = 0; d < D; ++d) mean += x[d];
        mean /= D;
        const double scale = cache["ln_final.hook_scale"].values[static_cast<std::size_t>(n) * T + T - 1];
        for (index_t d = 0; d < D; ++d) x[d] = (x[d] - mean) / scale * ln_w[static_cast<std::size_t>(d)];
      }
      columns(n, [&](index_t c) {
        double s = 0;
        for (index_t d = 0; d < D; ++d) s += x[d] * unembed_weight(d, c);
        out.values.push_back(s);
      });
    }
  }
  // The constant part: b_U and the final LayerNorm's bias through W_U.
  out.components.push_back("bias");
  std::vector<double> constant(static_cast<std::size_t>(V_out), 0.0);
  if constexpr (Arch::layer_norm)
    for (index_t c = 0; c < V_out; ++c)
      for (index_t d = 0; d < D; ++d)
        constant[static_cast<std::size_t>(c)] += ln_b[static_cast<std::size_t>(d)] * unembed_weight(d, c);
  if constexpr (Arch::trainable_biases && !Arch::tied) {
    const std::vector<Scalar> b_u = net.tensor("unembed.b_U");
    for (index_t c = 0; c < V_out; ++c) constant[static_cast<std::size_t>(c)] += b_u[static_cast<std::size_t>(c)];
  }
  for (index_t n = 0; n < N; ++n)
    columns(n, [&](index_t c) { out.values.push_back(constant[static_cast<std::size_t>(c)]); });
  return out;
}

}  // namespace tinyattn
