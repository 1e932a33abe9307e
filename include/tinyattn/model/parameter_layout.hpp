// tinyattn/model/parameter_layout.hpp — where each weight tensor lives in the flat parameter buffer.
//
// Parameters, gradients and both AdamW moments are flat buffers of `count` scalars in this order:
//
//   W_E   (V, D)        token embedding, also the unembedding (tied: logits = x W_E^T)
//   W_pos (T, D)        positional embedding
//   W_Q   (H, D, dh)    query projection per head   } adjacent, so one batched product computes
//   W_K   (H, D, dh)    key projection per head     } all three projections
//   W_V   (H, D, dh)    value projection per head   }
//   W_O   (H, dh, D)    output projection per head
//
// Shapes and names are those of the original PyTorch notebook's state_dict, so weight files move
// between tinyattn and PyTorch unchanged. Its four biases are zero and frozen: they are not trainable
// parameters here and are written as zeros to files for compatibility.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "tinyattn/core/shape.hpp"

namespace tinyattn {

struct TensorSpec {
  const char* name;                  // PyTorch state_dict name
  const char* short_name;            // W_E, W_pos, ...
  std::size_t offset;                // first element in the flat buffer
  std::vector<std::int64_t> shape;   // PyTorch shape
  std::size_t count() const {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    return n;
  }
};

enum class Tensor { token_embedding, positional_embedding, query, key, value, output };

template <class ShapeT>
struct ParameterLayout {
  static constexpr index_t V = ShapeT::vocab, D = ShapeT::d_model, H = ShapeT::heads, T = ShapeT::context,
                           dh = ShapeT::head_dim;

  static constexpr std::size_t token_embedding = 0;                            // W_E   (V, D)
  static constexpr std::size_t positional_embedding = token_embedding + V * D;  // W_pos (T, D)
  static constexpr std::size_t query = positional_embedding + T * D;           // W_Q   (H, D, dh)
  static constexpr std::size_t key = query + H * D * dh;                       // W_K   (H, D, dh)
  static constexpr std::size_t value = key + H * D * dh;                       // W_V   (H, D, dh)
  static constexpr std::size_t output = value + H * D * dh;                    // W_O   (H, dh, D)
  static constexpr std::size_t count = output + H * dh * D;

  static std::array<TensorSpec, 6> tensors() {
    return {{
        {"_token_embedding._weight", "W_E", token_embedding, {V, D}},
        {"_positional_embedding._positions", "W_pos", positional_embedding, {T, D}},
        {"_transformer_block._attention._query_weight", "W_Q", query, {H, D, dh}},
        {"_transformer_block._attention._key_weight", "W_K", key, {H, D, dh}},
        {"_transformer_block._attention._value_weight", "W_V", value, {H, D, dh}},
        {"_transformer_block._attention._output_weight", "W_O", output, {H, dh, D}},
    }};
  }
  static TensorSpec spec(Tensor t) { return tensors()[static_cast<std::size_t>(t)]; }

  // The notebook's frozen zero biases: (name, shape), written to weight files as zeros.
  static std::array<std::pair<const char*, std::vector<std::int64_t>>, 4> frozen_zero_biases() {
    return {{
        {"_transformer_block._attention._query_bias", {H, dh}},
        {"_transformer_block._attention._key_bias", {H, dh}},
        {"_transformer_block._attention._value_bias", {H, dh}},
        {"_transformer_block._attention._output_bias", {D}},
    }};
  }
};

}  // namespace tinyattn
