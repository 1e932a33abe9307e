// tinyattn/model/repeated_evaluation.hpp — one batch evaluated again and again as a model's parameters
// change (progress measures during training: inspect/training_snapshots.hpp).
//
//   tinyattn::RepeatedEvaluation<Net> on_max(max_batch);
//   tinyattn::Evaluation e = on_max.evaluate(net);   // == net.evaluate(max_batch), bit for bit
//
// Transformer::evaluate builds what an evaluation needs — for the table engine the batch's row space,
// its per-sample row indices and buffers; for the reference engine its buffers and the batch on the
// backend — and drops it at the end. Here it is built once and kept: each evaluate() runs only the
// passes over the current parameters, the same engine with the same inputs as Transformer::evaluate
// with its default paths, so the numbers are the same.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <type_traits>

#include "tinyattn/model/transformer.hpp"

namespace tinyattn {

template <class Net>
class RepeatedEvaluation {
  using Shape = typename Net::Shape;
  using Arch = typename Net::Architecture;
  using Backend = typename Net::backend_type;
  using Scalar = typename Net::scalar_type;
  struct NoTableEngine {};
  using Table =
      std::conditional_t<Net::has_table_engine,
                         TableEngine<Shape, Backend, Scalar, TableHeadOf<Shape, Arch, Backend, Scalar>>, NoTableEngine>;
  using Reference = ReferenceEngine<Shape, Arch, Backend, Scalar>;

 public:
  // Throws tinyattn::Error for a batch net.evaluate would refuse (tokens or targets out of range, a
  // wrong context length, no targets).
  explicit RepeatedEvaluation(const TokenBatch& batch) {
    validate_batch(batch, Net::vocab, Net::vocab_out, Net::context, "RepeatedEvaluation", TargetsRequired::yes);
    if constexpr (Net::has_table_engine) {
      if (every_last_position_scored(batch)) {
        table_.emplace(TokenBatch{Net::context, {}, {}}, batch, LogitPath::automatic, ScorePath::automatic);
        return;
      }
    }
    const index_t capacity = std::max<index_t>(1, batch.size());
    reference_.emplace(capacity);
    device_.emplace(reference_->make_batch(capacity));
    device_->load(batch);
    reference_->set_interventions(Interventions<Scalar>{}, batch.size());
  }

  // net.evaluate(batch) of the batch given at construction, for net's current parameters.
  Evaluation evaluate(const Net& net) {
    if constexpr (Net::has_table_engine) {
      // The table engine recomputes its tables only when the version it is given changes; a version of
      // our own, new at every call, keeps it from reusing tables of another model (or of parameters
      // written without mark_modified()).
      if (table_) return to_evaluation(table_->evaluate_test(net.parameter_data(), ++table_version_));
    }
    return to_evaluation(reference_->evaluate(net.parameter_data(), *device_));
  }

 private:
  // Transformer::evaluate's condition for the table engine (beside its premises on the model).
  static bool every_last_position_scored(const TokenBatch& batch) {
    for (index_t n = 0; n < batch.size(); ++n)
      if (batch.last_target(n) < 0) return false;
    return batch.size() > 0;
  }

  std::optional<Table> table_;
  std::uint64_t table_version_ = 0;
  std::optional<Reference> reference_;
  std::optional<DeviceBatch<Backend>> device_;
};

}  // namespace tinyattn
