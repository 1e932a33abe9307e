// tinyattn/train/trainer.hpp — full-batch training with AdamW and per-epoch evaluation.
//
//   tinyattn::MinMaxTask task(128, /*seed=*/0);
//   Net net(/*seed=*/0);
//   tinyattn::Trainer<Net> trainer(net, task.train(), task.test());
//   trainer.run(750, [](const tinyattn::EpochMetrics& m) { /* log, plot, stop early ... */ return true; });
//
// One epoch, as the reference: forward and backward on the whole training set (its loss and accuracy
// are those of the weights before the step), one AdamW step, then the test set evaluated with the new
// weights. The library prints nothing; the callback sees every epoch's numbers.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <type_traits>
#include <string>
#include <vector>

#include "tinyattn/model/attention_network.hpp"
#include "tinyattn/model/batch_backward.hpp"
#include "tinyattn/train/adamw.hpp"

namespace tinyattn {

struct EpochMetrics {
  std::int64_t epoch = 0;  // 1-based: the number of optimizer steps taken after this epoch
  double train_loss = 0, train_accuracy = 0;  // before this epoch's step
  double test_loss = std::numeric_limits<double>::quiet_NaN();  // after it; NaN without a test set
  double test_accuracy = std::numeric_limits<double>::quiet_NaN();
};

// Thrown when the loss or a gradient stops being finite. The parameters are left as they were before
// the step that would have used them: the last good weights.
class DivergenceError : public Error {
 public:
  DivergenceError(std::int64_t epoch, const std::string& what)
      : Error("training diverged at epoch " + std::to_string(epoch) + ": " + what +
              "; the parameters are those before this epoch's step"),
        epoch_(epoch) {}
  std::int64_t epoch() const { return epoch_; }

 private:
  std::int64_t epoch_;
};

struct TrainerOptions {
  AdamWConfig adamw{};
  LogitPath logit_path = LogitPath::automatic;  // chosen at compile time from the shape
  ScorePath score_path = ScorePath::automatic;  // chosen from the data: distinct last tokens vs samples
};

template <class Network>
class Trainer {
 public:
  using Shape = typename Network::Shape;
  using Backend = typename Network::backend_type;
  using Scalar = typename Network::scalar_type;

 private:
  using P = Primitives<Backend>;

 public:
  // requires: train non-empty; test may be empty (no evaluation then). Both are validated against the
  // network's shape (tinyattn::Error naming sample, position and value otherwise).
  Trainer(Network& net, const TokenBatch& train, const TokenBatch& test, const TrainerOptions& options = {})
      : net_(net),
        options_(options),
        path_(resolve<Shape>(options.logit_path)),
        space_(make_space(train, test)),
        scores_(resolve(options.score_path, space_, std::int64_t{train.size()} + test.size())),
        tables_(space_, path_ == LogitPath::logit_table, scores_ == ScorePath::table),
        gradient_(train, space_, path_, scores_),
        optimizer_(Network::parameter_count, options.adamw) {
    if (test.size() > 0) evaluator_.emplace(test, space_, path_);
    P::allocate(grads_, Network::parameter_count);
  }

  // A network of another type (shape, backend or scalar) is a compile error with this message.
  template <class Other, std::enable_if_t<!std::is_same_v<Other, Network>, int> = 0>
  Trainer(Other& other, const TokenBatch& train, const TokenBatch& test, const TrainerOptions& options = {})
      : Trainer(reject_network(other), train, test, options) {}

  // One epoch: step, then evaluation. Throws DivergenceError (parameters unchanged) when the training
  // loss or a gradient is NaN or infinite.
  EpochMetrics train_epoch() {
    EpochMetrics m;
    m.epoch = optimizer_.steps() + 1;
    const Evaluation train = compute_gradients();
    m.train_loss = train.loss;
    m.train_accuracy = train.accuracy;
    if (!std::isfinite(train.loss)) throw DivergenceError(m.epoch, "training loss is " + std::to_string(train.loss));
    if (!gradients_finite_) throw DivergenceError(m.epoch, "a gradient is NaN or infinite");
    optimizer_.step(net_.parameter_data(), P::data(grads_));
    net_.mark_modified();
    if (evaluator_) {
      const Evaluation test = evaluate_test();
      m.test_loss = test.loss;
      m.test_accuracy = test.accuracy;
    }
    return m;
  }

  // Runs `epochs` epochs; on_epoch(metrics) after each, returning false stops early.
  // Returns the metrics of the last epoch run.
  template <class Callback>
  EpochMetrics run(std::int64_t epochs, Callback&& on_epoch) {
    require(epochs >= 0, "Trainer::run: epochs must be >= 0, found ", epochs);
    EpochMetrics last;
    for (std::int64_t e = 0; e < epochs; ++e) {
      last = train_epoch();
      if (!on_epoch(static_cast<const EpochMetrics&>(last))) break;
    }
    return last;
  }
  EpochMetrics run(std::int64_t epochs) {
    return run(epochs, [](const EpochMetrics&) { return true; });
  }

  // Loss and accuracy on the training set and the gradient of the mean loss (read it with
  // gradients()), without a step.
  Evaluation compute_gradients() {
    refresh_tables();
    const BatchTotals totals = gradient_.compute(net_.parameter_data(), tables_, P::data(grads_));
    gradients_finite_ = totals.finite;
    return to_evaluation(totals, gradient_.samples());
  }
  // Loss and accuracy on the test set with the current parameters.
  Evaluation evaluate_test() {
    require(evaluator_.has_value(), "Trainer::evaluate_test: the trainer has no test set");
    refresh_tables();
    return to_evaluation(evaluator_->evaluate(net_.parameter_data(), tables_), evaluator_->samples());
  }

  std::vector<Scalar> gradients() const {
    std::vector<Scalar> host(Network::parameter_count);
    P::download(grads_, host.data());
    return host;
  }
  AdamW<Backend, Scalar>& optimizer() { return optimizer_; }
  const AdamW<Backend, Scalar>& optimizer() const { return optimizer_; }
  LogitPath logit_path() const { return path_; }
  ScorePath score_path() const { return scores_; }
  const RowSpace& row_space() const { return space_; }
  Network& network() { return net_; }
  const Network& network() const { return net_; }

 private:
  template <class Other>
  static Network& reject_network(Other& other) {
    static_assert(dependent_false<Other>,
                  "tinyattn::Trainer<Net>: the network passed is not a Net (its shape, backend or scalar type "
                  "differs); use Trainer<decltype(net)>");
    return *reinterpret_cast<Network*>(&other);
  }

  static RowSpace make_space(const TokenBatch& train, const TokenBatch& test) {
    require(train.size() > 0, "Trainer: the training set is empty");
    validate_batch(train, Shape::vocab, Shape::context, "Trainer: training set");
    if (test.size() > 0) validate_batch(test, Shape::vocab, Shape::context, "Trainer: test set");
    return RowSpace(Shape::vocab, Shape::context, {train, test});
  }

  // The tables follow the parameters; recompute only when they changed (the test evaluation after a
  // step and the next epoch's training pass share one computation).
  void refresh_tables() {
    if (tables_version_ == net_.version()) return;
    tables_.compute(net_.parameter_data());
    tables_version_ = net_.version();
  }

  Network& net_;
  TrainerOptions options_;
  LogitPath path_;
  RowSpace space_;
  ScorePath scores_;
  RowTables<Shape, Backend, Scalar> tables_;
  std::optional<std::uint64_t> tables_version_;
  BatchGradient<Shape, Backend, Scalar> gradient_;
  std::optional<BatchEvaluator<Shape, Backend, Scalar>> evaluator_;
  AdamW<Backend, Scalar> optimizer_;
  typename P::template buffer<Scalar> grads_;
  bool gradients_finite_ = true;
};

}  // namespace tinyattn
