// tinyattn/model/parameter_layout.hpp — where each weight tensor lives in the flat parameter buffer.
//
// Parameters, gradients and both AdamW moments are flat buffers of `count` scalars, tensors in this
// order, with TransformerLens's state-dict names and shapes (V_out = d_vocab_out, dh = d_head, M = d_mlp):
//
//   embed.W_E               (V, D)        token embedding (tied: also the unembedding, logits = x W_E^T)
//   pos_embed.W_pos         (T, D)        positional embedding
//   per block l = 0..L-1, under blocks.{l}.:
//     ln1.w, ln1.b          (D)           LayerNorm before attention            [layer_norm]
//     attn.W_Q, W_K, W_V    (H, D, dh)    projections per head, adjacent: one batched product makes q, k, v
//     attn.W_O              (H, dh, D)    output projection per head
//     attn.b_Q, b_K, b_V    (H, dh)       projection biases                      [trainable_biases]
//     attn.b_O              (D)
//     ln2.w, ln2.b          (D)           LayerNorm before the MLP              [layer_norm and mlp]
//     mlp.W_in              (D, M)                                               [mlp]
//     mlp.b_in              (M)                                                  [mlp, trainable_biases]
//     mlp.W_out             (M, D)                                               [mlp]
//     mlp.b_out             (D)                                                  [mlp, trainable_biases]
//   ln_final.w, ln_final.b  (D)                                                  [layer_norm]
//   unembed.W_U             (D, V_out)                                           [untied_unembedding]
//   unembed.b_U             (V_out)                                              [untied, trainable_biases]
//
// The reference experiment's architecture holds W_E, W_pos, W_Q, W_K, W_V, W_O only — the original
// notebook's tensors, in its order; its state_dict names are kept as `notebook_name` (weight files of that
// family are written under them, see io/weights.hpp). Frozen-zero biases are not parameters: they are
// zero in the math and written to files as zeros.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tinyattn/core/architecture.hpp"
#include "tinyattn/core/shape.hpp"

namespace tinyattn {

// How a tensor is initialised: weights N(0, 1/sqrt(D)); biases 0; LayerNorm weights 1, biases 0.
enum class TensorKind { weight, bias, norm_weight, norm_bias };

struct TensorSpec {
  std::string name;                 // TransformerLens state-dict name: blocks.0.attn.W_Q
  std::string notebook_name;        // the original notebook's name (reference family only), else empty
  std::string short_name;           // W_Q, b_in, ln1.w ... (within its block)
  index_t layer = -1;               // block index, -1 outside the blocks
  std::size_t offset = 0;           // first element in the flat buffer
  std::vector<std::int64_t> shape;  // TransformerLens shape
  TensorKind kind = TensorKind::weight;
  std::size_t count() const {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    return n;
  }
};

// The tensors of the reference experiment's model, for code that names them (net.tensor(...)).
enum class Tensor { token_embedding, positional_embedding, query, key, value, output };

// A bias tensor that a model does not train but that its weight files carry as zeros.
struct ZeroTensor {
  std::string name;
  std::vector<std::int64_t> shape;
};

template <class ShapeT, class Arch = ReferenceArchitecture>
struct ParameterLayout {
  using Dims = ModelDims<ShapeT, Arch>;
  static constexpr index_t V = Dims::V, V_out = Dims::V_out, D = Dims::D, H = Dims::H, T = Dims::T, dh = Dims::dh,
                           L = Dims::L, M = Dims::M;
  static constexpr bool kNorm = Arch::layer_norm, kMlp = Arch::has_mlp, kBiases = Arch::trainable_biases,
                        kUntied = !Arch::tied;

  // ---- one block, offsets from its first element ---------------------------------------------------
  struct Block {
    static constexpr std::size_t ln1_w = 0;
    static constexpr std::size_t ln1_b = ln1_w + (kNorm ? D : 0);
    static constexpr std::size_t W_Q = ln1_b + (kNorm ? D : 0);
    static constexpr std::size_t W_K = W_Q + std::size_t{H} * D * dh;
    static constexpr std::size_t W_V = W_K + std::size_t{H} * D * dh;
    static constexpr std::size_t W_O = W_V + std::size_t{H} * D * dh;
    static constexpr std::size_t b_Q = W_O + std::size_t{H} * dh * D;
    static constexpr std::size_t b_K = b_Q + (kBiases ? std::size_t{H} * dh : 0);
    static constexpr std::size_t b_V = b_K + (kBiases ? std::size_t{H} * dh : 0);
    static constexpr std::size_t b_O = b_V + (kBiases ? std::size_t{H} * dh : 0);
    static constexpr std::size_t ln2_w = b_O + (kBiases ? D : 0);
    static constexpr std::size_t ln2_b = ln2_w + (kNorm && kMlp ? D : 0);
    static constexpr std::size_t W_in = ln2_b + (kNorm && kMlp ? D : 0);
    static constexpr std::size_t b_in = W_in + (kMlp ? std::size_t{D} * M : 0);
    static constexpr std::size_t W_out = b_in + (kMlp && kBiases ? M : 0);
    static constexpr std::size_t b_out = W_out + (kMlp ? std::size_t{M} * D : 0);
    static constexpr std::size_t size = b_out + (kMlp && kBiases ? D : 0);
  };

  static constexpr std::size_t token_embedding = 0;                                          // W_E   (V, D)
  static constexpr std::size_t positional_embedding = token_embedding + std::size_t{V} * D;  // W_pos (T, D)
  static constexpr std::size_t first_block = positional_embedding + std::size_t{T} * D;
  static constexpr std::size_t block(index_t l) { return first_block + static_cast<std::size_t>(l) * Block::size; }
  static constexpr std::size_t ln_final_w = first_block + static_cast<std::size_t>(L) * Block::size;
  static constexpr std::size_t ln_final_b = ln_final_w + (kNorm ? D : 0);
  static constexpr std::size_t unembed_W_U = ln_final_b + (kNorm ? D : 0);  // (D, V_out)
  static constexpr std::size_t unembed_b_U = unembed_W_U + (kUntied ? std::size_t{D} * V_out : 0);
  static constexpr std::size_t count = unembed_b_U + (kUntied && kBiases ? V_out : 0);

  // The first block's projections, by the names the one-layer table engine uses.
  static constexpr std::size_t query = first_block + Block::W_Q;   // W_Q (H, D, dh)
  static constexpr std::size_t key = first_block + Block::W_K;     // W_K (H, D, dh)
  static constexpr std::size_t value = first_block + Block::W_V;   // W_V (H, D, dh)
  static constexpr std::size_t output = first_block + Block::W_O;  // W_O (H, dh, D)

  // The original notebook's model family: its six tensors and nothing else.
  static constexpr bool notebook_family =
      L == 1 && !Arch::causal && !kMlp && !kNorm && Arch::tied && Arch::biases != Biases::trainable && dh * H == D;

  // Every parameter tensor, in buffer order.
  static std::vector<TensorSpec> tensors() {
    std::vector<TensorSpec> out;
    std::size_t at = 0;
    auto add = [&](std::string name, const char* notebook, std::string short_name, index_t layer,
                   std::vector<std::int64_t> shape, TensorKind kind) {
      TensorSpec spec{std::move(name),
                      notebook_family && notebook ? notebook : "",
                      std::move(short_name),
                      layer,
                      at,
                      std::move(shape),
                      kind};
      at += spec.count();
      out.push_back(std::move(spec));
    };
    using K = TensorKind;
    add("embed.W_E", "_token_embedding._weight", "W_E", -1, {V, D}, K::weight);
    add("pos_embed.W_pos", "_positional_embedding._positions", "W_pos", -1, {T, D}, K::weight);
    for (index_t l = 0; l < L; ++l) {
      const std::string b = "blocks." + std::to_string(l) + ".";
      if (kNorm) {
        add(b + "ln1.w", nullptr, "ln1.w", l, {D}, K::norm_weight);
        add(b + "ln1.b", nullptr, "ln1.b", l, {D}, K::norm_bias);
      }
      add(b + "attn.W_Q", "_transformer_block._attention._query_weight", "W_Q", l, {H, D, dh}, K::weight);
      add(b + "attn.W_K", "_transformer_block._attention._key_weight", "W_K", l, {H, D, dh}, K::weight);
      add(b + "attn.W_V", "_transformer_block._attention._value_weight", "W_V", l, {H, D, dh}, K::weight);
      add(b + "attn.W_O", "_transformer_block._attention._output_weight", "W_O", l, {H, dh, D}, K::weight);
      if (kBiases) {
        add(b + "attn.b_Q", nullptr, "b_Q", l, {H, dh}, K::bias);
        add(b + "attn.b_K", nullptr, "b_K", l, {H, dh}, K::bias);
        add(b + "attn.b_V", nullptr, "b_V", l, {H, dh}, K::bias);
        add(b + "attn.b_O", nullptr, "b_O", l, {D}, K::bias);
      }
      if (kNorm && kMlp) {
        add(b + "ln2.w", nullptr, "ln2.w", l, {D}, K::norm_weight);
        add(b + "ln2.b", nullptr, "ln2.b", l, {D}, K::norm_bias);
      }
      if (kMlp) {
        add(b + "mlp.W_in", nullptr, "W_in", l, {D, M}, K::weight);
        if (kBiases) add(b + "mlp.b_in", nullptr, "b_in", l, {M}, K::bias);
        add(b + "mlp.W_out", nullptr, "W_out", l, {M, D}, K::weight);
        if (kBiases) add(b + "mlp.b_out", nullptr, "b_out", l, {D}, K::bias);
      }
    }
    if (kNorm) {
      add("ln_final.w", nullptr, "ln_final.w", -1, {D}, K::norm_weight);
      add("ln_final.b", nullptr, "ln_final.b", -1, {D}, K::norm_bias);
    }
    if (kUntied) {
      add("unembed.W_U", nullptr, "W_U", -1, {D, V_out}, K::weight);
      if (kBiases) add("unembed.b_U", nullptr, "b_U", -1, {V_out}, K::bias);
    }
    return out;
  }

  // The spec of the reference model's tensor `t` (the first block's, for deeper models).
  static TensorSpec spec(Tensor t) {
    const char* names[] = {"embed.W_E",         "pos_embed.W_pos",   "blocks.0.attn.W_Q",
                           "blocks.0.attn.W_K", "blocks.0.attn.W_V", "blocks.0.attn.W_O"};
    return spec(names[static_cast<int>(t)]);
  }
  // The spec named `name` (TransformerLens or notebook name); throws tinyattn::Error for an unknown name.
  static TensorSpec spec(const std::string& name) {
    for (TensorSpec& s : tensors())
      if (s.name == name || (!s.notebook_name.empty() && s.notebook_name == name)) return s;
    throw Error("ParameterLayout: this model has no tensor '" + name + "'");
  }

  // Frozen-zero biases: absent from the parameters, written to weight files as zeros. Notebook family:
  // the notebook's four attention biases under its names; otherwise TransformerLens's bias tensors.
  static std::vector<ZeroTensor> zero_biases(bool notebook_names) {
    std::vector<ZeroTensor> out;
    if (Arch::biases != Biases::frozen_zero) return out;
    if (notebook_names) {
      out.push_back({"_transformer_block._attention._query_bias", {H, dh}});
      out.push_back({"_transformer_block._attention._key_bias", {H, dh}});
      out.push_back({"_transformer_block._attention._value_bias", {H, dh}});
      out.push_back({"_transformer_block._attention._output_bias", {D}});
      return out;
    }
    for (index_t l = 0; l < L; ++l) {
      const std::string b = "blocks." + std::to_string(l) + ".";
      out.push_back({b + "attn.b_Q", {H, dh}});
      out.push_back({b + "attn.b_K", {H, dh}});
      out.push_back({b + "attn.b_V", {H, dh}});
      out.push_back({b + "attn.b_O", {D}});
      if (kMlp) {
        out.push_back({b + "mlp.b_in", {M}});
        out.push_back({b + "mlp.b_out", {D}});
      }
    }
    if (kUntied) out.push_back({"unembed.b_U", {V_out}});
    return out;
  }
};

}  // namespace tinyattn
