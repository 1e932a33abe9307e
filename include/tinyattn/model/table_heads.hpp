// tinyattn/model/table_heads.hpp — what the table engine's direct path computes after the attention:
// from a tile of samples' residual rows at the last position (tile, D) to the loss, and back to those
// rows' gradient. The attention before it lives in the tables (model/row_tables.hpp) and the per-sample
// mix (model/sample_kernels.hpp); the head is the part that differs between the one-layer models the
// table engine serves.
//
//   TiedUnembeddingHead   the reference experiment: logits = resid W_E^T (the logit-table path exists
//                         for it too: model/row_tables.hpp)
//   MlpUnembeddingHead    an MLP block and/or an untied unembedding (the grokking model):
//                         resid' = resid + act(resid W_in) W_out;  logits = resid' W_U (or W_E^T)
//
// A head's train() writes its own tensors' gradients at the first tile (accumulate = false) and adds at
// the others; it reads targets and writes loss and hits for samples [first, first + count). A head may
// keep per-row tables of its own (Head::Tables, computed with the RowTables once per parameter
// version): the MLP's input product of every table row (MlpInputTable), so that a sample's MLP input
// is mixed from the same rows as its residual stream.
#pragma once

#include "tinyattn/layers/cross_entropy.hpp"
#include "tinyattn/layers/mlp.hpp"
#include "tinyattn/layers/unembedding.hpp"
#include "tinyattn/model/layers.hpp"
#include "tinyattn/model/parameter_layout.hpp"
#include "tinyattn/model/row_tables.hpp"
#include "tinyattn/model/sample_kernels.hpp"

namespace tinyattn {

// How the direct path computes a sample's MLP input pre = resid W_in (both exact re-associations):
//   table   resid is the mix sum_j w_j z[row_j] of J = H T + 1 table rows (model/row_tables.hpp), so pre
//           is the same mix of the rows' products z W_in, made once per pass (H R + Rq rows of d_mlp):
//           J d_mlp multiply-adds per sample instead of D d_mlp. Pays when J < D and a pass has many
//           samples per table row (grokking: J = 13, D = 128, 12,769 samples on 909 rows).
//   direct  one (samples, D) x (D, d_mlp) product.
enum class MlpInputPath { automatic, table, direct };

inline const char* to_string(MlpInputPath path) {
  switch (path) {
    case MlpInputPath::automatic:
      return "automatic";
    case MlpInputPath::table:
      return "table";
    case MlpInputPath::direct:
      return "direct";
  }
  return "?";
}

// The table costs (H R + Rq) D d_mlp multiply-adds per pass; mixing saves (D - J) d_mlp per sample.
template <class Shape>
MlpInputPath resolve(MlpInputPath path, const RowSpace& space, std::int64_t samples_per_pass) {
  if (path != MlpInputPath::automatic) return path;
  constexpr std::int64_t D = Shape::d_model, J = kernels::mix_slots<Shape>;
  if (J >= D) return MlpInputPath::direct;
  const std::int64_t table_rows = std::int64_t{Shape::heads} * space.size() + space.query_rows();
  return table_rows * D < samples_per_pass * (D - J) ? MlpInputPath::table : MlpInputPath::direct;
}

// The per-row tables of a head without any.
template <class Shape, class Backend, class Scalar>
struct NoHeadTables {
  NoHeadTables(const RowSpace&, std::int64_t, MlpInputPath path) {
    require(path != MlpInputPath::table, "table engine: the MLP input table needs a model with an MLP");
  }
  void compute(const Scalar*, const RowTables<Shape, Backend, Scalar>&) {}
  MlpInputPath mlp_input_path() const { return MlpInputPath::direct; }
  const Scalar* input() const { return nullptr; }
};

// The MLP's input product of every row a sample mixes (model/row_tables.hpp): u_h W_in for every head
// and row, then x W_in for the query rows ((H R + Rq, d_mlp), the rows of z in their order), when the
// path is the table; nothing otherwise.
template <class Shape, class Arch, class Backend, class Scalar>
class MlpInputTable {
  using P = Primitives<Backend>;
  using Layout = ParameterLayout<Shape, Arch>;
  static constexpr index_t D = Layout::D, M = Layout::M;

 public:
  MlpInputTable(const RowSpace& space, std::int64_t samples_per_pass, MlpInputPath path)
      : path_(Arch::has_mlp ? resolve<Shape>(path, space, samples_per_pass) : MlpInputPath::direct),
        rows_(Shape::heads * space.size() + space.query_rows()) {
    require(Arch::has_mlp || path != MlpInputPath::table,
            "table engine: the MLP input table needs a model with an MLP");
    if (path_ == MlpInputPath::table) P::allocate(table_, static_cast<std::size_t>(rows_) * M);
  }

  void compute(const Scalar* params, const RowTables<Shape, Backend, Scalar>& tables) {
    if constexpr (Arch::has_mlp) {
      if (path_ != MlpInputPath::table) return;
      layers::matmul_forward<Backend>(P::data(table_), M, tables.z(), D,
                                      params + Layout::block(0) + Layout::Block::W_in, M, rows_, D, M);
    }
  }

  MlpInputPath mlp_input_path() const { return path_; }
  index_t rows() const { return rows_; }  // H R + Rq
  // (H R + Rq, d_mlp), or null on the direct path
  const Scalar* input() const { return path_ == MlpInputPath::table ? P::data(table_) : nullptr; }

 private:
  MlpInputPath path_;
  index_t rows_;
  typename P::template buffer<Scalar> table_;
};

template <class Shape, class Backend, class Scalar>
class TiedUnembeddingHead {
  using P = Primitives<Backend>;
  using Ly = Layers<Shape, Backend, Scalar>;
  using RowOps = typename P::row_ops;
  static constexpr index_t Vp = kernels::padded_vocab<Shape, Scalar>;

 public:
  static constexpr bool has_logit_table = true;
  static constexpr std::size_t parameter_count = ParameterLayout<Shape>::count;
  using Tables = NoHeadTables<Shape, Backend, Scalar>;
  static constexpr index_t input_width = 0;  // no input table
  using Inputs = kernels::SampleInputs<Shape, Scalar>;

  explicit TiedUnembeddingHead(index_t tile) {
    P::allocate(logits_, static_cast<std::size_t>(tile) * Vp);
    P::allocate(dlogits_, static_cast<std::size_t>(tile) * Vp);
  }

  void evaluate(const Scalar* params, const Tables&, const Inputs&, const Scalar* resid, index_t count,
                const index_t* targets, index_t first, Scalar* loss, index_t* correct) {
    Ly::unembedding_forward(params, resid, count, P::data(logits_));
    P::for_each_team(
        count, kernels::offset_by(kernels::CrossEntropyRows<Shape, Scalar, RowOps>{P::data(logits_), targets, Scalar(0),
                                                                                   nullptr, loss, correct, first},
                                  first));
  }

  void train(const Scalar* params, const Tables&, const Inputs&, const Scalar* resid, index_t count,
             const index_t* targets, index_t first, Scalar grad_scale, Scalar* loss, index_t* correct, Scalar* dresid,
             Scalar* grads, bool accumulate) {
    Ly::unembedding_forward(params, resid, count, P::data(logits_));
    P::for_each_team(count, kernels::offset_by(
                                kernels::CrossEntropyRows<Shape, Scalar, RowOps>{
                                    P::data(logits_), targets, grad_scale, P::data(dlogits_), loss, correct, first},
                                first));
    Ly::unembedding_backward(params, resid, P::data(dlogits_), count, grads, dresid, accumulate);
  }

 private:
  typename P::template buffer<Scalar> logits_, dlogits_;
};

template <class Shape, class Arch, class Backend, class Scalar>
class MlpUnembeddingHead {
  using P = Primitives<Backend>;
  using Layout = ParameterLayout<Shape, Arch>;
  static constexpr index_t D = Layout::D, M = Layout::M, V_out = Layout::V_out;
  static constexpr bool kMlp = Arch::has_mlp;
  static_assert(!Arch::layer_norm && !Arch::trainable_biases && Layout::L == 1,
                "MlpUnembeddingHead: one block, no LayerNorm, no trainable biases");
  // The table layers (model/layers.hpp) address W_E .. W_O through the reference model's layout.
  static_assert(Layout::output == ParameterLayout<Shape>::output && Layout::query == ParameterLayout<Shape>::query,
                "MlpUnembeddingHead: W_E .. W_O must lie where the reference model's layout puts them");

 public:
  static constexpr bool has_logit_table = false;
  static constexpr std::size_t parameter_count = Layout::count;
  using Tables = MlpInputTable<Shape, Arch, Backend, Scalar>;
  static constexpr index_t input_width = kMlp ? M : 0;  // columns of the input table
  // The batch's inputs with in.weights set: the mixing weights of the tile's samples (for Tables).
  using Inputs = kernels::SampleInputs<Shape, Scalar>;

  explicit MlpUnembeddingHead(index_t tile) {
    const auto rows = static_cast<std::size_t>(tile);
    if constexpr (kMlp) {
      P::allocate(pre_, rows * M);
      P::allocate(post_, rows * M);
      P::allocate(dpost_, rows * M);
      P::allocate(resid_post_, rows * D);
      P::allocate(mlp_out_, rows * D);
    }
    P::allocate(logits_, rows * V_out);
  }

  void evaluate(const Scalar* params, const Tables& tables, const Inputs& in, const Scalar* resid, index_t count,
                const index_t* targets, index_t first, Scalar* loss, index_t* correct) {
    forward(params, tables, in, resid, count, first);
    layers::cross_entropy_forward_backward<Backend>(P::data(logits_), targets + first, loss + first, correct + first,
                                                    count, V_out, Scalar(0), /*gradient=*/false);
  }

  void train(const Scalar* params, const Tables& tables, const Inputs& in, const Scalar* resid, index_t count,
             const index_t* targets, index_t first, Scalar grad_scale, Scalar* loss, index_t* correct, Scalar* dresid,
             Scalar* grads, bool accumulate) {
    if (!accumulate) zero_own_gradients(grads);
    const Scalar* x = forward(params, tables, in, resid, count, first);  // the unembedding's input
    layers::cross_entropy_forward_backward<Backend>(P::data(logits_), targets + first, loss + first, correct + first,
                                                    count, V_out, grad_scale, /*gradient=*/true);
    // d resid' (written), then, through the MLP, d resid = d resid' + the MLP's input gradient.
    layers::unembedding_backward<Backend>(dresid, grads + Layout::token_embedding, unembed(grads), kNoGradient,
                                          P::data(logits_), x, params + Layout::token_embedding, unembed(params),
                                          Arch::tied, count, D, V_out);
    if constexpr (kMlp) {
      const std::size_t b = Layout::block(0);
      layers::mlp_backward_to_pre<Backend>(P::data(dpost_), grads + b + Layout::Block::W_out, kNoGradient, dresid,
                                           P::data(pre_), P::data(post_), params + b + Layout::Block::W_out,
                                           Arch::activation, count, D, M);
      // With the input table, d pre goes back through the table's rows (input_gradient(), then
      // table_input_backward once per pass); otherwise through the product here.
      if (!tables.input())
        layers::mlp_input_backward<Backend>(dresid, grads + b + Layout::Block::W_in, kNoGradient, P::data(dpost_),
                                            resid, params + b + Layout::Block::W_in, count, D, M);
    }
  }

  // After train() on the table path: d pre of the tile's samples (count, M), to be mixed back onto the
  // input table's rows (as the residual rows' gradient onto z's).
  const Scalar* input_gradient() const { return P::data(dpost_); }

  // Once per pass, from the gradient of the input table's rows dinput (H R + Rq rows of M, in z's row
  // order): d W_in += z^T dinput, and dz += dinput W_in^T (the rows' own input gradient).
  void table_input_backward(const Scalar* params, const Tables& tables, const Scalar* z, const Scalar* dinput,
                            Scalar* grads, Scalar* dz) {
    if constexpr (kMlp) {
      const std::size_t b = Layout::block(0);
      layers::mlp_input_backward<Backend>(dz, grads + b + Layout::Block::W_in, kNoGradient, dinput, z,
                                          params + b + Layout::Block::W_in, tables.rows(), D, M);
    }
  }

 private:
  static constexpr const Scalar* kNoBias = nullptr;  // biases frozen at zero or absent
  static constexpr Scalar* kNoGradient = nullptr;

  template <class S>
  static S* unembed(S* flat) {
    return Arch::tied ? nullptr : flat + Layout::unembed_W_U;
  }
  // resid (count, D) -> logits (count, V_out); returns the rows the unembedding read.
  const Scalar* forward(const Scalar* params, const Tables& tables, const Inputs& in, const Scalar* resid,
                        index_t count, index_t first) {
    const Scalar* x = resid;
    if constexpr (kMlp) {
      const std::size_t b = Layout::block(0);
      if (const Scalar* input = tables.input()) {  // pre mixed from the rows' products
        P::for_each_team(
            count,
            kernels::offset_by(kernels::MixRows<Shape, Scalar, M, typename P::row_ops>{in, input, P::data(pre_), first},
                               first));
        layers::mlp_forward_from_pre<Backend>(P::data(mlp_out_), P::data(pre_), P::data(post_),
                                              params + b + Layout::Block::W_out, kNoBias, Arch::activation, count, D,
                                              M);
      } else {
        layers::mlp_forward<Backend>(P::data(mlp_out_), P::data(pre_), P::data(post_), resid,
                                     params + b + Layout::Block::W_in, kNoBias, params + b + Layout::Block::W_out,
                                     kNoBias, Arch::activation, count, D, M);
      }
      layers::residual_forward<Backend>(P::data(resid_post_), resid, P::data(mlp_out_), count, D);
      x = P::data(resid_post_);
    }
    layers::unembedding_forward<Backend>(P::data(logits_), x, params + Layout::token_embedding, unembed(params),
                                         kNoBias, Arch::tied, count, D, V_out);
    return x;
  }
  // The tensors this head writes (W_in, W_out, W_U) start at zero; the layer functions add. W_E starts
  // at zero too: a tied unembedding's share is added to it here, and the table layers' embedding
  // backward adds its own share afterwards (with the tied head it writes first, TiedUnembeddingHead).
  void zero_own_gradients(Scalar* grads) {
    if constexpr (kMlp) {
      const std::size_t b = Layout::block(0);
      P::fill(grads + b + Layout::Block::W_in, static_cast<std::size_t>(D) * M, Scalar(0));
      P::fill(grads + b + Layout::Block::W_out, static_cast<std::size_t>(M) * D, Scalar(0));
    }
    P::fill(grads + Layout::token_embedding, static_cast<std::size_t>(Layout::V) * D, Scalar(0));
    if constexpr (!Arch::tied) P::fill(grads + Layout::unembed_W_U, static_cast<std::size_t>(D) * V_out, Scalar(0));
  }

  typename P::template buffer<Scalar> pre_, post_, dpost_, resid_post_, mlp_out_, logits_;
};

}  // namespace tinyattn
