// tinyattn/model/transformer.hpp — a transformer of a compile-time Shape and Architecture on a backend:
// its parameters, their initialisation, and looking inside it (inspect, evaluate, predict).
//
//   using Shape = tinyattn::Shape</*V*/ 114, /*D*/ 128, /*H*/ 4, /*T*/ 3>;
//   using Arch = tinyattn::Architecture<tinyattn::mlp<512>, tinyattn::untied_unembedding,
//                                       tinyattn::output_vocab<113>>;
//   tinyattn::Transformer<Shape, Arch> net(/*seed=*/0);               // CPU, float
//   tinyattn::Transformer<Shape, Arch, tinyattn::backend::thrust, double> on_thrust;
//
// The model and every name it uses are TransformerLens's (model/reference_engine.hpp has the math,
// model/parameter_layout.hpp the tensors, model/activation_cache.hpp the activations). The reference
// experiment's network, tinyattn::AttentionNetwork<Shape>, is Transformer<Shape, Architecture<>>.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "tinyattn/backend/primitives.hpp"
#include "tinyattn/core/architecture.hpp"
#include "tinyattn/core/random.hpp"
#include "tinyattn/core/shape.hpp"
#include "tinyattn/model/activation_cache.hpp"
#include "tinyattn/model/reference_engine.hpp"
#include "tinyattn/model/table_engine.hpp"

namespace tinyattn {

// Mean loss and accuracy over a batch's scored positions.
struct Evaluation {
  double loss = 0.0;
  double accuracy = 0.0;
  std::int64_t correct = 0;
  std::int64_t samples = 0;  // scored positions (one per sample when the loss reads the last position)
};

inline Evaluation to_evaluation(const BatchTotals& t) {
  Evaluation e;
  e.samples = t.scored;
  e.correct = t.correct;
  e.loss = t.scored ? t.loss_sum / static_cast<double>(t.scored) : 0.0;
  e.accuracy = t.scored ? static_cast<double>(t.correct) / static_cast<double>(t.scored) : 0.0;
  return e;
}

template <class ShapeT, class Arch = ReferenceArchitecture, class Backend = backend::cpu, class Scalar = float>
class Transformer {
  static_assert(is_shape_v<ShapeT>,
                "tinyattn::Transformer<Shape, Architecture, Backend, Scalar>: the first argument must be "
                "tinyattn::Shape<V, D, H, T>");
  static_assert(is_architecture_v<Arch>,
                "tinyattn::Transformer<Shape, Architecture, Backend, Scalar>: the second argument must be "
                "tinyattn::Architecture<options...>");
  static_assert(is_backend_v<Backend>,
                "tinyattn::AttentionNetwork<Shape, Backend, Scalar>: the backend must be "
                "tinyattn::backend::cpu or tinyattn::backend::thrust");
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "tinyattn::AttentionNetwork<Shape, Backend, Scalar>: Scalar must be float or double");

  using P = Primitives<Backend>;

 public:
  using Shape = ShapeT;
  using Architecture = Arch;
  using backend_type = Backend;
  using scalar_type = Scalar;
  using Layout = ParameterLayout<Shape, Arch>;
  using Dims = ModelDims<Shape, Arch>;
  static constexpr index_t vocab = Dims::V, vocab_out = Dims::V_out, d_model = Dims::D, heads = Dims::H,
                           context = Dims::T, head_dim = Dims::dh, layers = Dims::L, d_mlp = Dims::M;
  static constexpr std::size_t parameter_count = Layout::count;
  // Whether the table engine (model/table_engine.hpp) can train and evaluate this model.
  static constexpr bool has_table_engine = table_engine_applies<Shape, Arch>;

  // Initial weights from NormalGenerator(seed), drawn in Layout order: every weight matrix N(0, 1/sqrt(D))
  // (as the reference's torch.randn(shape) / sqrt(D)); biases 0; LayerNorm weights 1, biases 0.
  explicit Transformer(std::uint64_t seed = 0) { initialize(seed); }

  void initialize(std::uint64_t seed) {
    NormalGenerator normal(seed);
    const double scale = 1.0 / std::sqrt(static_cast<double>(d_model));
    std::vector<Scalar> values(parameter_count);
    for (const TensorSpec& spec : Layout::tensors()) {
      Scalar* v = values.data() + spec.offset;
      for (std::size_t i = 0; i < spec.count(); ++i) {
        switch (spec.kind) {
          case TensorKind::weight:
            v[i] = static_cast<Scalar>(normal.next() * scale);
            break;
          case TensorKind::norm_weight:
            v[i] = Scalar(1);
            break;
          case TensorKind::bias:
          case TensorKind::norm_bias:
            v[i] = Scalar(0);
            break;
        }
      }
    }
    set_parameters(values);
  }

  // ---- parameters ------------------------------------------------------------------------------------
  std::vector<Scalar> parameters() const {
    std::vector<Scalar> host(parameter_count);
    P::download(params_, host.data());
    return host;
  }
  void set_parameters(const std::vector<Scalar>& values) {
    require(values.size() == parameter_count, "Transformer::set_parameters: ", values.size(), " values, expected ",
            parameter_count);
    P::upload(params_, values.data(), values.size());
    ++version_;
  }
  // One tensor by TransformerLens name ("blocks.0.attn.W_Q"; the notebook's names work too).
  std::vector<Scalar> tensor(const std::string& name) const { return slice(Layout::spec(name)); }
  std::vector<Scalar> tensor(Tensor which) const { return slice(Layout::spec(which)); }
  void set_tensor(const std::string& name, const std::vector<Scalar>& values) { assign(Layout::spec(name), values); }
  void set_tensor(Tensor which, const std::vector<Scalar>& values) { assign(Layout::spec(which), values); }

  // The flat parameter buffer on the backend. After writing through the mutable pointer, call
  // mark_modified() so that trainers rebuild their tables.
  Scalar* parameter_data() { return P::data(params_); }
  const Scalar* parameter_data() const { return P::data(params_); }
  void mark_modified() { ++version_; }
  // Changes whenever the parameters change (trainers compare it to know when tables are stale).
  std::uint64_t version() const { return version_; }

  // ---- looking inside ---------------------------------------------------------------------------------
  // The full forward of every sample at every position, under TransformerLens's names
  // (model/activation_cache.hpp); `names` empty: every activation; with `interventions`, the forward
  // they change (model/interventions.hpp). Targets are not needed. Throws
  // tinyattn::Error for tokens outside the vocabulary or a wrong context length (naming sample,
  // position and value).
  ActivationCache<Scalar> inspect(const TokenBatch& batch, const std::vector<std::string>& names = {},
                                  const Interventions<Scalar>& interventions = {}) const {
    validate_batch(batch, vocab, vocab_out, context, "Transformer::inspect", TargetsRequired::no);
    ReferenceEngine<Shape, Arch, Backend, Scalar> engine(std::max<index_t>(1, batch.size()));
    DeviceBatch<Backend> device = engine.make_batch(std::max<index_t>(1, batch.size()));
    device.load(batch);
    engine.set_interventions(interventions, batch.size());
    ActivationCache<Scalar> cache;
    engine.inspect(parameter_data(), device, names, cache);
    return cache;
  }
  // The reference model's form: the parts of a CacheParts mask.
  ActivationCache<Scalar> inspect(const TokenBatch& batch, unsigned parts) const {
    return inspect(batch, cache_names(parts, layers));
  }

  // Mean cross-entropy and accuracy over the batch's scored positions (the loss's positions: the last
  // one, or every one with a target). Uses the table engine where it applies (the paths are its
  // options), else the reference engine.
  Evaluation evaluate(const TokenBatch& batch, LogitPath path = LogitPath::automatic,
                      ScorePath scores = ScorePath::automatic, Engine engine = Engine::automatic) const {
    validate_batch(batch, vocab, vocab_out, context, "Transformer::evaluate", TargetsRequired::yes);
    if constexpr (has_table_engine) {
      if (engine != Engine::reference && every_last_position_scored(batch)) {
        TableEngine<Shape, Backend, Scalar, TableHeadOf<Shape, Arch, Backend, Scalar>> table(
            TokenBatch{context, {}, {}}, batch, path, scores);
        return to_evaluation(table.evaluate_test(parameter_data(), version_));
      }
    }
    require(engine != Engine::table, "Transformer::evaluate: the table engine does not apply to this model or batch");
    return evaluate(batch, Interventions<Scalar>{});
  }
  // The same through the reference engine, with heads ablated or activations patched.
  Evaluation evaluate(const TokenBatch& batch, const Interventions<Scalar>& interventions) const {
    validate_batch(batch, vocab, vocab_out, context, "Transformer::evaluate", TargetsRequired::yes);
    ReferenceEngine<Shape, Arch, Backend, Scalar> reference(std::max<index_t>(1, batch.size()));
    DeviceBatch<Backend> device = reference.make_batch(std::max<index_t>(1, batch.size()));
    device.load(batch);
    reference.set_interventions(interventions, batch.size());
    return to_evaluation(reference.evaluate(parameter_data(), device));
  }

  // The logits at the last position, (N, V_out) on the host (with interventions, when given). Targets
  // are not needed.
  std::vector<Scalar> last_logits(const TokenBatch& batch, const Interventions<Scalar>& interventions = {}) const {
    validate_batch(batch, vocab, vocab_out, context, "Transformer::last_logits", TargetsRequired::no);
    ReferenceEngine<Shape, Arch, Backend, Scalar> engine(std::max<index_t>(1, batch.size()));
    DeviceBatch<Backend> device = engine.make_batch(std::max<index_t>(1, batch.size()));
    device.load(batch);
    engine.set_interventions(interventions, batch.size());
    return engine.last_logits(parameter_data(), device);
  }

  // The most likely next token after each sample (argmax of the last position's logits; first index
  // on ties, as torch.argmax). Targets are not needed.
  std::vector<index_t> predict(const TokenBatch& batch) const {
    const std::vector<Scalar> logits = last_logits(batch);
    std::vector<index_t> out(static_cast<std::size_t>(batch.size()));
    for (index_t n = 0; n < batch.size(); ++n) {
      const Scalar* l = logits.data() + static_cast<std::size_t>(n) * vocab_out;
      index_t best = 0;
      for (index_t c = 1; c < vocab_out; ++c)
        if (l[c] > l[best]) best = c;
      out[static_cast<std::size_t>(n)] = best;
    }
    return out;
  }

 private:
  static bool every_last_position_scored(const TokenBatch& batch) {
    for (index_t n = 0; n < batch.size(); ++n)
      if (batch.last_target(n) < 0) return false;
    return batch.size() > 0;
  }
  std::vector<Scalar> slice(const TensorSpec& spec) const {
    const std::vector<Scalar> all = parameters();
    return {all.begin() + static_cast<std::ptrdiff_t>(spec.offset),
            all.begin() + static_cast<std::ptrdiff_t>(spec.offset + spec.count())};
  }
  void assign(const TensorSpec& spec, const std::vector<Scalar>& values) {
    require(values.size() == spec.count(), "Transformer::set_tensor: ", spec.name, " needs ", spec.count(),
            " values, got ", values.size());
    std::vector<Scalar> all = parameters();
    std::copy(values.begin(), values.end(), all.begin() + static_cast<std::ptrdiff_t>(spec.offset));
    set_parameters(all);
  }

  typename P::template buffer<Scalar> params_;
  std::uint64_t version_ = 0;
};

}  // namespace tinyattn
