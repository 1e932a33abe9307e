// tinyattn/train/trainer.hpp — training with AdamW: full batch or minibatches, test evaluation every
// k epochs.
//
//   tinyattn::MinMaxTask task(128, /*seed=*/0);
//   Net net(/*seed=*/0);
//   tinyattn::TrainerOptions options;
//   options.adamw = {/*lr*/ 2e-3, /*weight_decay*/ 1.0, /*beta1*/ 0.9, /*beta2*/ 0.99, /*eps*/ 1e-8};
//   tinyattn::Trainer<Net> trainer(net, task.train(), task.test(), options);
//   trainer.run(750, [](const tinyattn::EpochMetrics& m) { /* log, plot, stop early ... */ return true; });
//
// One epoch, as the PyTorch peer: full batch — forward and backward on the whole training set (its loss
// and accuracy are those of the weights before the step) and one AdamW step; minibatches of
// `batch_size` — the sample order 0..N-1 shuffled by one PythonRandom(shuffle_seed) (random.shuffle,
// once per epoch, a fresh list each time), one step per minibatch (the last one shorter), the epoch's
// train loss and accuracy averaged over the minibatches by scored positions. Then, every `eval_every`
// epochs, the test set is evaluated with the new weights. The library prints nothing; the callback
// sees every epoch's numbers.
//
// The table engine trains where its premises hold (model/table_engine.hpp), the reference engine
// otherwise; TrainerOptions::engine picks one explicitly.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "tinyattn/core/random.hpp"
#include "tinyattn/model/attention_network.hpp"
#include "tinyattn/train/adamw.hpp"

namespace tinyattn {

struct EpochMetrics {
  std::int64_t epoch = 0;  // 1-based: epochs trained after this one
  // Of the forward passes that made this epoch's steps (weights before each step).
  double train_loss = 0, train_accuracy = 0;
  // After the epoch's steps; NaN when the test set was not evaluated this epoch (or there is none).
  double test_loss = std::numeric_limits<double>::quiet_NaN();
  double test_accuracy = std::numeric_limits<double>::quiet_NaN();
  bool tested() const { return !std::isnan(test_loss); }
};

// Thrown when the loss or a gradient stops being finite. The parameters are left as they were before
// the step that would have used them: the last good weights.
class DivergenceError : public Error {
 public:
  DivergenceError(std::int64_t epoch, const std::string& what)
      : Error("training diverged at epoch " + std::to_string(epoch) + ": " + what +
              "; the parameters are those before this step"),
        epoch_(epoch) {}
  std::int64_t epoch() const { return epoch_; }

 private:
  std::int64_t epoch_;
};

struct TrainerOptions {
  AdamWConfig adamw{};             // torch.optim.AdamW's defaults; set every value an experiment needs
  index_t batch_size = 0;          // samples per step; 0 (or >= the training set): full batch
  std::uint64_t shuffle_seed = 0;  // PythonRandom seed of the minibatch order (the peer's --seed)
  std::int64_t eval_every = 1;     // evaluate the test set after every k-th epoch (k >= 1)
  Engine engine = Engine::automatic;
  LogitPath logit_path = LogitPath::automatic;       // table engine: chosen at compile time from the shape
  ScorePath score_path = ScorePath::automatic;       // table engine: chosen from the data
  MlpInputPath mlp_input = MlpInputPath::automatic;  // table engine with an MLP: chosen from the data
};

namespace detail {
struct NoTableEngine {};
}  // namespace detail

template <class Network>
class Trainer {
 public:
  using Shape = typename Network::Shape;
  using Arch = typename Network::Architecture;
  using Backend = typename Network::backend_type;
  using Scalar = typename Network::scalar_type;

 private:
  using P = Primitives<Backend>;
  using Reference = ReferenceEngine<Shape, Arch, Backend, Scalar>;
  using Table = std::conditional_t<Network::has_table_engine,
                                   TableEngine<Shape, Backend, Scalar, TableHeadOf<Shape, Arch, Backend, Scalar>>,
                                   detail::NoTableEngine>;

 public:
  // requires: train non-empty with targets; test may be empty (no evaluation then), but a test set with
  // samples must have targets. Both are validated against the network (tinyattn::Error naming sample,
  // position and value otherwise).
  Trainer(Network& net, const TokenBatch& train, const TokenBatch& test, const TrainerOptions& options = {})
      : net_(net), options_(options), train_size_(train.size()), shuffle_(options.shuffle_seed) {
    validate(options);
    require(train.size() > 0, "Trainer: the training set is empty");
    validate_batch(train, Network::vocab, Network::vocab_out, Network::context, "Trainer: training set",
                   TargetsRequired::yes);
    if (test.size() > 0)
      validate_batch(test, Network::vocab, Network::vocab_out, Network::context, "Trainer: test set",
                     TargetsRequired::yes);
    const index_t n = train.size();
    batch_ = options.batch_size > 0 && options.batch_size < n ? options.batch_size : n;
    if (batch_ < n) train_set_ = train;  // minibatches are gathered from it every step
    choose_engine(train, test);
    if (!table_) {
      reference_.emplace(std::max(n, test.size()), n);
      full_train_ = reference_->make_batch(n);
      full_train_.load(train);
      if (batch_ < n) minibatch_ = reference_->make_batch(batch_);
      if (test.size() > 0) {
        test_ = reference_->make_batch(test.size());
        test_.load(test);
      }
    }
    has_test_ = test.size() > 0;
    P::allocate(grads_, Network::parameter_count);
    order_.resize(static_cast<std::size_t>(n));
    part_.reserve(static_cast<std::size_t>(batch_));
  }

  // A network of another type (shape, architecture, backend or scalar) is a compile error with this message.
  template <class Other, std::enable_if_t<!std::is_same_v<Other, Network>, int> = 0>
  Trainer(Other& other, const TokenBatch& train, const TokenBatch& test, const TrainerOptions& options = {})
      : Trainer(reject_network(other), train, test, options) {}

  // One epoch: the steps, then the test evaluation when it is due. Throws DivergenceError (parameters
  // those before the failing step) when a training loss or a gradient is NaN or infinite.
  EpochMetrics train_epoch() {
    EpochMetrics m;
    m.epoch = epochs_ + 1;
    double loss_sum = 0, correct = 0, scored = 0;
    if (batch_ == train_size_) {
      const BatchTotals t = step(m.epoch, /*minibatch=*/false);
      loss_sum = t.loss_sum, correct = static_cast<double>(t.correct), scored = static_cast<double>(t.scored);
    } else {
      std::iota(order_.begin(), order_.end(), 0);
      shuffle_.shuffle(order_);
      for (index_t first = 0; first < train_size_; first += batch_) {
        const index_t count = std::min(batch_, train_size_ - first);
        part_.assign(order_.begin() + first, order_.begin() + first + count);
        minibatch_.load(train_set_, &part_);
        const BatchTotals t = step(m.epoch, /*minibatch=*/true);
        loss_sum += t.loss_sum, correct += static_cast<double>(t.correct), scored += static_cast<double>(t.scored);
      }
    }
    m.train_loss = scored > 0 ? loss_sum / scored : 0.0;
    m.train_accuracy = scored > 0 ? correct / scored : 0.0;
    ++epochs_;
    if (has_test_ && epochs_ % options_.eval_every == 0) {
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

  // Loss and accuracy on the whole training set and the gradient of its mean loss (read it with
  // gradients()), without a step.
  Evaluation compute_gradients() {
    BatchTotals t;
    if constexpr (Network::has_table_engine) {
      if (table_) t = table_->gradient(net_.parameter_data(), net_.version(), P::data(grads_));
    }
    if (!table_) t = reference_->gradient(net_.parameter_data(), full_train_, P::data(grads_));
    gradients_finite_ = t.finite;
    return to_evaluation(t);
  }
  // Loss and accuracy on the test set with the current parameters. requires: a test set.
  Evaluation evaluate_test() {
    require(has_test_, "Trainer::evaluate_test: the trainer has no test set");
    if constexpr (Network::has_table_engine) {
      if (table_) return to_evaluation(table_->evaluate_test(net_.parameter_data(), net_.version()));
    }
    return to_evaluation(reference_->evaluate(net_.parameter_data(), test_));
  }

  std::vector<Scalar> gradients() const {
    std::vector<Scalar> host(Network::parameter_count);
    P::download(grads_, host.data());
    return host;
  }
  AdamW<Backend, Scalar>& optimizer() { return optimizer_; }
  const AdamW<Backend, Scalar>& optimizer() const { return optimizer_; }
  const TrainerOptions& options() const { return options_; }
  // Epochs trained so far.
  std::int64_t epochs() const { return epochs_; }
  // For resuming: the trainer continues as if `epochs` epochs had run (the minibatch order's generator
  // is advanced through their shuffles). The optimizer's state is restored separately.
  void restore_epochs(std::int64_t epochs) {
    require(epochs >= 0, "Trainer::restore_epochs: epochs must be >= 0, found ", epochs);
    shuffle_ = PythonRandom(options_.shuffle_seed);
    if (batch_ < train_size_)
      for (std::int64_t e = 0; e < epochs; ++e) {
        std::iota(order_.begin(), order_.end(), 0);
        shuffle_.shuffle(order_);
      }
    epochs_ = epochs;
  }
  Engine engine() const { return table_ ? Engine::table : Engine::reference; }
  index_t batch_size() const { return batch_; }
  LogitPath logit_path() const {
    if constexpr (Network::has_table_engine) {
      if (table_) return table_->logit_path();
    }
    return LogitPath::direct;
  }
  ScorePath score_path() const {
    if constexpr (Network::has_table_engine) {
      if (table_) return table_->score_path();
    }
    return ScorePath::per_sample;
  }
  MlpInputPath mlp_input_path() const {
    if constexpr (Network::has_table_engine) {
      if (table_) return table_->mlp_input_path();
    }
    return MlpInputPath::direct;
  }
  Network& network() { return net_; }
  const Network& network() const { return net_; }

 private:
  template <class Other>
  static Network& reject_network(Other& other) {
    static_assert(dependent_false<Other>,
                  "tinyattn::Trainer<Net>: the network passed is not a Net (its shape, architecture, backend or "
                  "scalar type differs); use Trainer<decltype(net)>");
    return *reinterpret_cast<Network*>(&other);
  }

  static void validate(const TrainerOptions& o) {
    tinyattn::validate(o.adamw);
    require(o.batch_size >= 0, "Trainer: batch_size must be >= 0 (0: full batch), found ", o.batch_size);
    require(o.eval_every >= 1, "Trainer: eval_every must be >= 1, found ", o.eval_every);
  }

  static bool last_positions_scored(const TokenBatch& b) {
    for (index_t n = 0; n < b.size(); ++n)
      if (b.last_target(n) < 0) return false;
    return true;
  }

  void choose_engine(const TokenBatch& train, const TokenBatch& test) {
    if (options_.engine == Engine::reference) return;
    const bool full_batch = batch_ == train.size();
    if constexpr (Network::has_table_engine) {
      if (full_batch && last_positions_scored(train) && last_positions_scored(test)) {
        table_.emplace(train, test, options_.logit_path, options_.score_path, options_.mlp_input);
        return;
      }
    }
    require(options_.engine != Engine::table, "Trainer: the table engine needs ",
            Network::has_table_engine ? "full-batch training and every sample scored at the last position"
                                      : "one block, no LayerNorm, no trainable biases, d_head = D / H and the loss "
                                        "at the last position",
            "; use Engine::automatic or Engine::reference");
  }

  // One optimizer step on the full training set or the loaded minibatch.
  BatchTotals step(std::int64_t epoch, bool minibatch) {
    BatchTotals t;
    if constexpr (Network::has_table_engine) {
      if (table_) t = table_->gradient(net_.parameter_data(), net_.version(), P::data(grads_));
    }
    if (!table_) t = reference_->gradient(net_.parameter_data(), minibatch ? minibatch_ : full_train_, P::data(grads_));
    const double loss = t.scored ? t.loss_sum / static_cast<double>(t.scored) : 0.0;
    if (!std::isfinite(loss)) throw DivergenceError(epoch, "training loss is " + std::to_string(loss));
    if (!t.finite) throw DivergenceError(epoch, "a gradient is NaN or infinite");
    optimizer_.step(net_.parameter_data(), P::data(grads_));
    net_.mark_modified();
    return t;
  }

  Network& net_;
  TrainerOptions options_;
  index_t train_size_;
  TokenBatch train_set_;  // a copy, for minibatches only
  index_t batch_ = 0;
  bool has_test_ = false;
  std::optional<Table> table_;
  std::optional<Reference> reference_;
  DeviceBatch<Backend> full_train_, minibatch_, test_;
  AdamW<Backend, Scalar> optimizer_{Network::parameter_count, options_.adamw};
  typename P::template buffer<Scalar> grads_;
  PythonRandom shuffle_;
  std::vector<index_t> order_, part_;
  std::int64_t epochs_ = 0;
  bool gradients_finite_ = true;
};

}  // namespace tinyattn
