// tinyattn/model/attention_network.hpp — the network: parameters on a backend, initialisation,
// inspection (full forward with cache), evaluation and prediction.
//
//   using Net = tinyattn::AttentionNetwork<tinyattn::Shape<131, 32, 2, 4>, tinyattn::backend::cpu>;
//   Net net(/*seed=*/0);
//
// The model, as the original notebook: x = W_E[token] + W_pos[position]; one multi-head self-attention
// layer without mask, LayerNorm or MLP, Q/K/V/O biases zero and frozen; scores = q . k,
// pattern = softmax(scores / sqrt(head_dim)); residual = x + sum_h pattern_h v_h W_O[h];
// logits = residual W_E^T (tied unembedding).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "tinyattn/backend/primitives.hpp"
#include "tinyattn/core/random.hpp"
#include "tinyattn/core/shape.hpp"
#include "tinyattn/model/attention_cache.hpp"
#include "tinyattn/model/batch_forward.hpp"

namespace tinyattn {

// Mean loss and accuracy of a batch at the last position.
struct Evaluation {
  double loss = 0.0;
  double accuracy = 0.0;
  std::int64_t correct = 0, samples = 0;
};

inline Evaluation to_evaluation(const BatchTotals& t, index_t samples) {
  Evaluation e;
  e.samples = samples;
  e.correct = t.correct;
  e.loss = samples ? t.loss_sum / samples : 0.0;
  e.accuracy = samples ? static_cast<double>(t.correct) / samples : 0.0;
  return e;
}

template <class ShapeT, class Backend = backend::cpu, class Scalar = float>
class AttentionNetwork {
  static_assert(is_shape_v<ShapeT>,
                "tinyattn::AttentionNetwork<Shape, Backend, Scalar>: the first argument must be "
                "tinyattn::Shape<V, D, H, T>");
  static_assert(is_backend_v<Backend>,
                "tinyattn::AttentionNetwork<Shape, Backend, Scalar>: the backend must be "
                "tinyattn::backend::cpu or tinyattn::backend::thrust");
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "tinyattn::AttentionNetwork<Shape, Backend, Scalar>: Scalar must be float or double");

  using P = Primitives<Backend>;

 public:
  using Shape = ShapeT;
  using backend_type = Backend;
  using scalar_type = Scalar;
  using Layout = ParameterLayout<Shape>;
  static constexpr index_t vocab = Shape::vocab, d_model = Shape::d_model, heads = Shape::heads,
                           context = Shape::context, head_dim = Shape::head_dim;
  static constexpr std::size_t parameter_count = Layout::count;

  // Initial weights: every entry N(0, 1/sqrt(D)) — standard deviation 1/sqrt(D) as the reference's
  // torch.randn(shape) / sqrt(D) — from NormalGenerator(seed), tensors in Layout order.
  explicit AttentionNetwork(std::uint64_t seed = 0) { initialize(seed); }

  void initialize(std::uint64_t seed) {
    NormalGenerator normal(seed);
    const double scale = 1.0 / std::sqrt(static_cast<double>(d_model));
    std::vector<Scalar> values(parameter_count);
    for (auto& v : values) v = static_cast<Scalar>(normal.next() * scale);
    set_parameters(values);
  }

  // ---- parameters ------------------------------------------------------------------------------------
  std::vector<Scalar> parameters() const {
    std::vector<Scalar> host(parameter_count);
    P::download(params_, host.data());
    return host;
  }
  void set_parameters(const std::vector<Scalar>& values) {
    require(values.size() == parameter_count, "AttentionNetwork::set_parameters: ", values.size(),
            " values, expected ", parameter_count);
    P::upload(params_, values.data(), values.size());
    ++version_;
  }
  std::vector<Scalar> tensor(Tensor which) const {
    const TensorSpec spec = Layout::spec(which);
    const std::vector<Scalar> all = parameters();
    return {all.begin() + static_cast<std::ptrdiff_t>(spec.offset),
            all.begin() + static_cast<std::ptrdiff_t>(spec.offset + spec.count())};
  }
  void set_tensor(Tensor which, const std::vector<Scalar>& values) {
    const TensorSpec spec = Layout::spec(which);
    require(values.size() == spec.count(), "AttentionNetwork::set_tensor: ", spec.short_name, " needs ",
            spec.count(), " values, got ", values.size());
    std::vector<Scalar> all = parameters();
    std::copy(values.begin(), values.end(), all.begin() + static_cast<std::ptrdiff_t>(spec.offset));
    set_parameters(all);
  }

  // The flat parameter buffer on the backend. After writing through the mutable pointer, call
  // mark_modified() so that trainers rebuild their tables.
  Scalar* parameter_data() { return P::data(params_); }
  const Scalar* parameter_data() const { return P::data(params_); }
  void mark_modified() { ++version_; }
  // Changes whenever the parameters change (trainers compare it to know when tables are stale).
  std::uint64_t version() const { return version_; }

  // ---- looking inside ---------------------------------------------------------------------------------
  // Full forward of every sample at every position; keeps the parts asked for. Throws tinyattn::Error
  // for tokens outside the vocabulary or a wrong context length (naming sample, position and value).
  AttentionCache<Scalar> inspect(const TokenBatch& batch, unsigned parts = cache_all) const {
    validate_batch(batch, vocab, vocab, context, "AttentionNetwork::inspect", TargetsRequired::no);
    const RowSpace space(vocab, context, {batch});
    RowTables<Shape, Backend, Scalar> tables(space, false, false);
    tables.compute(parameter_data());
    BatchPlan<Shape, Backend, Scalar> plan(batch, space, /*sort_by_rows=*/false);

    AttentionCache<Scalar> cache;
    cache.samples = batch.size(), cache.vocab = vocab, cache.d_model = d_model, cache.heads = heads,
    cache.context = context, cache.parts = parts;
    const auto n = static_cast<std::size_t>(batch.size());
    typename P::template buffer<Scalar> embedded, scores, pattern, attention_out, residual, logits;
    auto want = [&](unsigned part, typename P::template buffer<Scalar>& b, std::size_t count) -> Scalar* {
      if (!(parts & part) || count == 0) return nullptr;
      P::allocate(b, count);
      return P::data(b);
    };
    kernels::InspectSample<Shape, Scalar> k{
        {tables.qkv(), tables.rows()}, tables.z(), parameter_data() + Layout::token_embedding,
        plan.inputs(tables).kv_row,
        want(cache_embedded, embedded, n * context * d_model),
        want(cache_scores, scores, n * heads * context * context),
        want(cache_pattern, pattern, n * heads * context * context),
        want(cache_attention_out, attention_out, n * context * d_model),
        want(cache_residual, residual, n * context * d_model),
        want(cache_logits, logits, n * context * vocab)};
    P::for_each(batch.size(), k);
    auto fetch = [&](const Scalar* ptr, const typename P::template buffer<Scalar>& b, std::vector<Scalar>& out) {
      if (!ptr) return;
      out.resize(b.size());
      P::download(b, out.data());
    };
    fetch(k.embedded, embedded, cache.embedded);
    fetch(k.scores, scores, cache.scores);
    fetch(k.pattern, pattern, cache.pattern);
    fetch(k.attention_out, attention_out, cache.attention_out);
    fetch(k.residual, residual, cache.residual);
    fetch(k.logits, logits, cache.logits);
    return cache;
  }

  // Mean cross-entropy and accuracy at the last position.
  Evaluation evaluate(const TokenBatch& batch, LogitPath path = LogitPath::automatic,
                      ScorePath scores = ScorePath::automatic) const {
    validate_batch(batch, vocab, context, "AttentionNetwork::evaluate");
    const RowSpace space(vocab, context, {batch});
    RowTables<Shape, Backend, Scalar> tables(space, resolve<Shape>(path) == LogitPath::logit_table,
                                             resolve(scores, space, batch.size()) == ScorePath::table);
    tables.compute(parameter_data());
    BatchEvaluator<Shape, Backend, Scalar> evaluator(batch, space, path);
    return to_evaluation(evaluator.evaluate(parameter_data(), tables), batch.size());
  }

  // The most likely next token after each sample (argmax of the last position's logits; first index
  // on ties, as torch.argmax). Targets of the batch are ignored.
  std::vector<index_t> predict(const TokenBatch& batch) const {
    const AttentionCache<Scalar> cache = inspect(batch, cache_logits);
    std::vector<index_t> out(static_cast<std::size_t>(batch.size()));
    for (index_t n = 0; n < batch.size(); ++n) {
      const Scalar* l = cache.logits_at(n, context - 1);
      index_t best = 0;
      for (index_t c = 1; c < vocab; ++c)
        if (l[c] > l[best]) best = c;
      out[static_cast<std::size_t>(n)] = best;
    }
    return out;
  }

 private:
  typename P::template buffer<Scalar> params_;
  std::uint64_t version_ = 0;
};

}  // namespace tinyattn
