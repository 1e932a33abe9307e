// tinyattn/model/attention_network.hpp — the reference experiment's network: one attention-only layer,
// no mask, no LayerNorm, tied unembedding, Q/K/V/O biases frozen at zero, loss at the last position.
//
//   using Net = tinyattn::AttentionNetwork<tinyattn::Shape<131, 32, 2, 4>, tinyattn::backend::cpu>;
//   Net net(/*seed=*/0);
//
// It is the Transformer of the default Architecture (model/transformer.hpp), with every member that
// name gives; code that names only a Shape keeps meaning this model.
#pragma once

#include "tinyattn/model/transformer.hpp"

namespace tinyattn {

template <class ShapeT, class Backend = backend::cpu, class Scalar = float>
using AttentionNetwork = Transformer<ShapeT, ReferenceArchitecture, Backend, Scalar>;

}  // namespace tinyattn
