// tinyattn/core/shape.hpp — the compile-time shape of an attention network.
//
//   using Reference = tinyattn::Shape<131, 32, 2, 4>;   // vocab V, d_model D, heads H, context T
//
// Every buffer size in the library is derived from these four numbers and the Architecture
// (core/architecture.hpp), so a wrong combination is a compile error, not a crash later.
#pragma once

#include <cstdint>
#include <type_traits>

#include "tinyattn/core/config.hpp"

namespace tinyattn {

template <int Vocab, int DModel, int Heads, int Context>
struct Shape {
  // The static_asserts live in the class body so they fire as soon as the shape is used.
  static_assert(Vocab >= 1, "tinyattn::Shape<V, D, H, T>: vocabulary size V must be at least 1");
  static_assert(DModel >= 1, "tinyattn::Shape<V, D, H, T>: embedding dimension D must be at least 1");
  static_assert(Heads >= 1, "tinyattn::Shape<V, D, H, T>: head count H must be at least 1");
  static_assert(Context >= 1, "tinyattn::Shape<V, D, H, T>: context length T must be at least 1");
  // D need not be a multiple of H here: an architecture may set head_dim<dh> (core/architecture.hpp,
  // ModelDims checks the pair).
  // Every flat buffer is indexed with 32-bit integers; keep the largest table (V rows per
  // (head, token, position)) well inside that range.
  static_assert(static_cast<std::int64_t>(Vocab) * Context * (Heads + 1) * (Vocab > DModel ? Vocab : DModel) <
                    (std::int64_t{1} << 31),
                "tinyattn::Shape<V, D, H, T>: shape too large for 32-bit buffer indices");

  static constexpr index_t vocab = Vocab;      // V: tokens 0..V-1
  static constexpr index_t d_model = DModel;   // D: width of the residual stream
  static constexpr index_t heads = Heads;      // H
  static constexpr index_t context = Context;  // T: tokens per sample; the loss reads position T-1
  static constexpr index_t head_dim = Heads >= 1 ? DModel / Heads : 1;  // D / H (ModelDims: head_dim<dh> overrides)
};

template <class T>
struct is_shape : std::false_type {};
template <int V, int D, int H, int T>
struct is_shape<Shape<V, D, H, T>> : std::true_type {};
template <class T>
inline constexpr bool is_shape_v = is_shape<T>::value;

// The shape of the reference experiment: 128 operands + max + min + '=', 32 wide, 2 heads, 4 tokens.
using ReferenceShape = Shape<131, 32, 2, 4>;

}  // namespace tinyattn
