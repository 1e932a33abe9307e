// tinyattn/model/table_engine.hpp — the fast path: the reference engine's numbers, for the models where
// its premises hold, computed on tables of distinct (token, position) rows.
//
// Premises (all checked at compile time by table_engine_applies, except the data's):
//   one block, no LayerNorm, biases frozen at zero or absent, d_head = D / H, loss at the last
//   position; full-batch training; every sample scored at the last position. (A causal mask changes
//   nothing there: the last query sees every key.)
// Under them the layer input takes at most V T distinct values, and everything before the softmax and
// the value/output products after it are linear in the pattern, so projections, value/output products
// (and, for an attention-only tied model, their logits) are computed once per distinct row and mixed
// per sample (model/row_tables.hpp, sample_kernels.hpp); what follows the attention — the tied
// unembedding, or an MLP and an untied unembedding — is the head (model/table_heads.hpp).
// Exact re-associations, no approximation; tests hold it against the reference engine
// (tests/core/test_engines.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>

#include "tinyattn/core/architecture.hpp"
#include "tinyattn/model/batch_backward.hpp"
#include "tinyattn/model/parameter_layout.hpp"

namespace tinyattn {

template <class ShapeT, class Arch>
inline constexpr bool table_engine_applies =
    ParameterLayout<ShapeT, Arch>::L == 1 && !Arch::layer_norm && Arch::biases != Biases::trainable &&
    Arch::loss == LossPositions::last && ModelDims<ShapeT, Arch>::dh * ShapeT::heads == ShapeT::d_model;

// The head of a model the table engine serves (model/table_heads.hpp).
template <class ShapeT, class Arch, class Backend, class Scalar>
using TableHeadOf = std::conditional_t<!Arch::has_mlp && Arch::tied, TiedUnembeddingHead<ShapeT, Backend, Scalar>,
                                       MlpUnembeddingHead<ShapeT, Arch, Backend, Scalar>>;

// Which engine trains and evaluates a model.
enum class Engine {
  automatic,  // the table engine where its premises hold, else the reference engine
  reference,  // always the reference engine (model/reference_engine.hpp)
  table,      // the table engine; an error where its premises do not hold
};

inline const char* to_string(Engine engine) {
  switch (engine) {
    case Engine::automatic:
      return "automatic";
    case Engine::reference:
      return "reference";
    case Engine::table:
      return "table";
  }
  return "?";
}

// Full-batch gradients of a training set and evaluations of a test set, sharing one RowTables that
// follows the parameters (recomputed only when their version changes).
template <class Shape, class Backend, class Scalar, class Head = TiedUnembeddingHead<Shape, Backend, Scalar>>
class TableEngine {
  using P = Primitives<Backend>;

 public:
  // requires: both validated with every sample scored at the last position; either may be empty (no
  // gradients, or no evaluation, then).
  TableEngine(const TokenBatch& train, const TokenBatch& test, LogitPath logits, ScorePath scores,
              MlpInputPath mlp_input = MlpInputPath::automatic)
      : path_(Head::has_logit_table ? resolve<Shape>(logits) : LogitPath::direct),
        space_(Shape::vocab, Shape::context, {std::cref(train), std::cref(test)}),
        scores_(resolve(scores, space_, std::int64_t{train.size()} + test.size())),
        tables_(space_, path_ == LogitPath::logit_table, scores_ == ScorePath::table),
        head_tables_(space_, std::int64_t{train.size()} + test.size(), mlp_input) {
    if (train.size() > 0)
      gradient_.emplace(train, space_, path_, scores_, head_tables_.mlp_input_path() == MlpInputPath::table);
    if (test.size() > 0) evaluator_.emplace(test, space_, path_);
  }

  // Loss and accuracy of the training set, and d mean loss / d params into grads (Layout order).
  // requires: a training set.
  BatchTotals gradient(const Scalar* params, std::uint64_t version, Scalar* grads) {
    refresh(params, version);
    BatchTotals totals = gradient_->compute(params, tables_, head_tables_, grads);
    totals.scored = gradient_->samples();
    return totals;
  }
  // Loss and accuracy of the test set. requires: a test set.
  BatchTotals evaluate_test(const Scalar* params, std::uint64_t version) {
    refresh(params, version);
    BatchTotals totals = evaluator_->evaluate(params, tables_, head_tables_);
    totals.scored = evaluator_->samples();
    return totals;
  }

  bool has_test() const { return evaluator_.has_value(); }
  LogitPath logit_path() const { return path_; }
  ScorePath score_path() const { return scores_; }
  MlpInputPath mlp_input_path() const { return head_tables_.mlp_input_path(); }
  const RowSpace& row_space() const { return space_; }
  const RowTables<Shape, Backend, Scalar>& tables() const { return tables_; }

 private:
  // The tables follow the parameters; recomputed only when they changed (the test evaluation after a
  // step and the next epoch's training pass share one computation).
  void refresh(const Scalar* params, std::uint64_t version) {
    if (version_ == version) return;
    tables_.compute(params);
    head_tables_.compute(params, tables_);
    version_ = version;
  }

  LogitPath path_;
  RowSpace space_;
  ScorePath scores_;
  RowTables<Shape, Backend, Scalar> tables_;
  typename Head::Tables head_tables_;
  std::optional<std::uint64_t> version_;
  std::optional<BatchGradient<Shape, Backend, Scalar, Head>> gradient_;
  std::optional<BatchEvaluator<Shape, Backend, Scalar, Head>> evaluator_;
};

}  // namespace tinyattn
