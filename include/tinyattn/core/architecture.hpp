// tinyattn/core/architecture.hpp — the compile-time architecture of a transformer, beside its Shape.
//
//   using Grokking = tinyattn::Architecture<tinyattn::mlp<512>, tinyattn::untied_unembedding,
//                                           tinyattn::output_vocab<113>>;
//   using Induction = tinyattn::Architecture<tinyattn::n_layers<2>, tinyattn::causal_mask,
//                                            tinyattn::untied_unembedding, tinyattn::trainable_biases,
//                                            tinyattn::loss_at_every_position>;
//   using Reference = tinyattn::Architecture<>;   // the reference experiment's model
//
// An architecture is a list of options in any order; every option left out keeps its default, and the
// defaults are the reference experiment's model. The options (TransformerLens names in brackets):
//
//   n_layers<L>                L >= 1 blocks                                          default 1
//   causal_mask                a query attends to its own and earlier positions      default: no mask
//   mlp<Width, Act>            an MLP in every block: act(x W_in + b_in) W_out + b_out, Act relu or gelu
//                              (exact, erf) (d_mlp, act_fn)                           default: attention only
//   layer_norm                 pre-LayerNorm: ln1 before attention, ln2 before the MLP, ln_final before
//                              the unembedding; eps 1e-5, learned weight and bias (normalization_type LN)
//   untied_unembedding         logits = x W_U + b_U with W_U (D, V_out) of its own   default: tied, x W_E^T
//   output_vocab<V_out>        V_out output tokens (d_vocab_out); only with an untied unembedding
//   trainable_biases           b_Q, b_K, b_V, b_O, b_in, b_out, b_U trained           default: frozen at zero
//   no_biases                  no bias tensors at all (not even in weight files)
//   loss_at_every_position     mean cross-entropy over every position with a target  default: last position
//   head_dim<dh>               d_head (default D / H); then D need not be a multiple of H
//
// Frozen-zero biases and absent biases compute the same function; the first writes zero bias tensors to
// weight files (TransformerLens models have them), the second writes none.
//
// A wrong combination is a compile error with a message that says what to change.
#pragma once

#include <type_traits>

#include "tinyattn/core/config.hpp"

namespace tinyattn {

enum class Mask { none, causal };
enum class Activation { relu, gelu };
enum class Normalization { none, layer_norm };
enum class Unembedding { tied, untied };
enum class Biases { frozen_zero, trainable, absent };
enum class LossPositions { last, every };

// ---- the options --------------------------------------------------------------------------------------
template <int L>
struct n_layers {};
struct causal_mask {};
template <int Width, Activation Act = Activation::relu>
struct mlp {};
struct layer_norm {};
struct untied_unembedding {};
template <int VOut>
struct output_vocab {};
struct trainable_biases {};
struct no_biases {};
struct loss_at_every_position {};
template <int Dh>
struct head_dim {};

namespace detail {

// What one option says; `known` is false for anything that is not an option.
template <class Option>
struct option_traits {
  static constexpr bool known = false;
};

struct option_defaults {
  static constexpr bool known = true;
  static constexpr int layers = 0, d_mlp = 0, vocab_out = 0, head_dim = 0;
  static constexpr bool causal = false, norm = false, untied = false, trainable = false, absent = false, every = false,
                        has_mlp = false, gelu = false;
  // Which setting the option is (to reject the same setting given twice).
  static constexpr int slot = -1;
};

template <int L>
struct option_traits<n_layers<L>> : option_defaults {
  static constexpr int layers = L, slot = 0;
};
template <>
struct option_traits<causal_mask> : option_defaults {
  static constexpr bool causal = true;
  static constexpr int slot = 1;
};
template <int W, Activation A>
struct option_traits<mlp<W, A>> : option_defaults {
  static constexpr int d_mlp = W, slot = 2;
  static constexpr bool has_mlp = true, gelu = A == Activation::gelu;
};
template <>
struct option_traits<layer_norm> : option_defaults {
  static constexpr bool norm = true;
  static constexpr int slot = 3;
};
template <>
struct option_traits<untied_unembedding> : option_defaults {
  static constexpr bool untied = true;
  static constexpr int slot = 4;
};
template <int V>
struct option_traits<output_vocab<V>> : option_defaults {
  static constexpr int vocab_out = V, slot = 5;
};
template <>
struct option_traits<trainable_biases> : option_defaults {
  static constexpr bool trainable = true;
  static constexpr int slot = 6;  // one slot for the biases: trainable and absent exclude each other
};
template <>
struct option_traits<no_biases> : option_defaults {
  static constexpr bool absent = true;
  static constexpr int slot = 6;
};
template <>
struct option_traits<loss_at_every_position> : option_defaults {
  static constexpr bool every = true;
  static constexpr int slot = 7;
};
template <int Dh>
struct option_traits<head_dim<Dh>> : option_defaults {
  static constexpr int head_dim = Dh, slot = 8;
};

template <class... Options, class Pick>
constexpr int sum_of([[maybe_unused]] Pick pick) {
  return (pick(option_traits<Options>{}) + ... + 0);
}
template <class... Options, class Pick>
constexpr bool any_of([[maybe_unused]] Pick pick) {
  return (pick(option_traits<Options>{}) || ... || false);
}

template <class... Options>
constexpr int count_slot([[maybe_unused]] int slot) {
  return ((option_traits<Options>::slot == slot ? 1 : 0) + ... + 0);
}
template <class... Options>
constexpr bool no_slot_twice() {
  for (int slot = 0; slot < 9; ++slot)
    if (count_slot<Options...>(slot) > 1) return false;
  return true;
}

}  // namespace detail

template <class... Options>
struct Architecture {
  static_assert((detail::option_traits<Options>::known && ...),
                "tinyattn::Architecture<...>: every argument must be an option: n_layers<L>, causal_mask, "
                "mlp<Width, Act>, layer_norm, untied_unembedding, output_vocab<V>, trainable_biases, no_biases, "
                "loss_at_every_position, head_dim<dh>");
  static_assert(detail::no_slot_twice<Options...>(),
                "tinyattn::Architecture<...>: an option is given twice (or both trainable_biases and no_biases)");

  static constexpr index_t n_layers = detail::any_of<Options...>([](auto t) { return decltype(t)::slot == 0; })
                                          ? detail::sum_of<Options...>([](auto t) { return decltype(t)::layers; })
                                          : 1;
  static constexpr Mask mask =
      detail::any_of<Options...>([](auto t) { return decltype(t)::causal; }) ? Mask::causal : Mask::none;
  static constexpr bool has_mlp = detail::any_of<Options...>([](auto t) { return decltype(t)::has_mlp; });
  static constexpr index_t d_mlp =
      detail::sum_of<Options...>([](auto t) { return decltype(t)::d_mlp; });  // 0 = attention only
  static constexpr Activation activation =
      detail::any_of<Options...>([](auto t) { return decltype(t)::gelu; }) ? Activation::gelu : Activation::relu;
  static constexpr Normalization normalization = detail::any_of<Options...>([](auto t) { return decltype(t)::norm; })
                                                     ? Normalization::layer_norm
                                                     : Normalization::none;
  static constexpr Unembedding unembedding =
      detail::any_of<Options...>([](auto t) { return decltype(t)::untied; }) ? Unembedding::untied : Unembedding::tied;
  static constexpr Biases biases =
      detail::any_of<Options...>([](auto t) { return decltype(t)::trainable; })
          ? Biases::trainable
          : (detail::any_of<Options...>([](auto t) { return decltype(t)::absent; }) ? Biases::absent
                                                                                    : Biases::frozen_zero);
  static constexpr LossPositions loss = detail::any_of<Options...>([](auto t) { return decltype(t)::every; })
                                            ? LossPositions::every
                                            : LossPositions::last;
  // 0: not given (the Shape's V and D / H apply).
  static constexpr index_t given_vocab_out = detail::sum_of<Options...>([](auto t) { return decltype(t)::vocab_out; });
  static constexpr index_t given_head_dim = detail::sum_of<Options...>([](auto t) { return decltype(t)::head_dim; });
  static constexpr bool vocab_out_given = detail::any_of<Options...>([](auto t) { return decltype(t)::slot == 5; });
  static constexpr bool head_dim_given = detail::any_of<Options...>([](auto t) { return decltype(t)::slot == 8; });

  static_assert(n_layers >= 1, "tinyattn::n_layers<L>: a transformer has at least one layer (L >= 1)");
  static_assert(!has_mlp || d_mlp >= 1,
                "tinyattn::mlp<Width>: the MLP width must be at least 1 (leave mlp<> out for attention only)");
  static_assert(!vocab_out_given || given_vocab_out >= 1,
                "tinyattn::output_vocab<V_out>: the output vocabulary needs at least one token");
  static_assert(!head_dim_given || given_head_dim >= 1, "tinyattn::head_dim<dh>: d_head must be at least 1");

  static constexpr bool layer_norm = normalization == Normalization::layer_norm;
  static constexpr bool tied = unembedding == Unembedding::tied;
  static constexpr bool causal = mask == Mask::causal;
  static constexpr bool trainable_biases = biases == Biases::trainable;
};

template <class T>
struct is_architecture : std::false_type {};
template <class... Options>
struct is_architecture<Architecture<Options...>> : std::true_type {};
template <class T>
inline constexpr bool is_architecture_v = is_architecture<T>::value;

// The reference experiment's model: one attention-only layer, no mask, no LayerNorm, tied unembedding,
// Q/K/V/O biases frozen at zero, loss at the last position.
using ReferenceArchitecture = Architecture<>;

// A Shape and an Architecture together: every size of the model, and the checks that need both.
template <class ShapeT, class Arch>
struct ModelDims {
  static constexpr index_t V = ShapeT::vocab;                                          // d_vocab
  static constexpr index_t V_out = Arch::vocab_out_given ? Arch::given_vocab_out : V;  // d_vocab_out
  static constexpr index_t D = ShapeT::d_model;
  static constexpr index_t H = ShapeT::heads;
  static constexpr index_t T = ShapeT::context;
  static constexpr index_t dh = Arch::head_dim_given ? Arch::given_head_dim : (H >= 1 ? D / H : 1);
  static constexpr index_t L = Arch::n_layers;
  static constexpr index_t M = Arch::d_mlp;  // 0 without an MLP

  static_assert(Arch::head_dim_given || D % H == 0,
                "tinyattn::Shape<V, D, H, T>: embedding dimension D must be divisible by head count H "
                "(head_dim = D / H), or give the architecture head_dim<dh>");
  static_assert(!Arch::tied || V_out == V,
                "tinyattn::Architecture: a tied unembedding reads the logits off W_E, so the output vocabulary "
                "must equal the input vocabulary V; add untied_unembedding for output_vocab<V_out> != V");
};

}  // namespace tinyattn
