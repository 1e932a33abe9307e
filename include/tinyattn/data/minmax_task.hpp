// tinyattn/data/minmax_task.hpp — the reference task: "a op b =" -> max(a, b) or min(a, b).
//
// Operands a, b run over 0..max_n-1; token max_n means max, max_n+1 min, max_n+2 '='; the vocabulary
// is max_n + 3 (131 for the reference max_n = 128). Sample i of the 2*max_n^2 samples is
//   op = i / max_n^2, a = (i / max_n) % max_n, b = i % max_n,
// the numbering the PyTorch reference uses. The split shuffles all indices with CPython's
// random.Random(seed).shuffle and trains on the first third (len // 3), so the same seed gives the
// same split as the reference. A sweep over the training fraction f trains on the first int(size * f)
// of the same order instead (the modular-addition peer's rule); f is not rounded to a third.
#pragma once

#include <cstdint>
#include <numeric>
#include <optional>
#include <vector>

#include "tinyattn/core/config.hpp"
#include "tinyattn/core/random.hpp"
#include "tinyattn/data/token_batch.hpp"
#include "tinyattn/train/adamw_config.hpp"

namespace tinyattn {

enum class MinMaxOp : index_t { max = 0, min = 1 };

struct MinMaxSample {
  index_t a, b;
  MinMaxOp op;
  index_t target;
};

class MinMaxTask {
 public:
  static constexpr index_t context = 4;  // a, op, b, '='

  // requires: 1 <= max_n <= 16384 (2 * max_n^2 samples must fit 32-bit indices).
  explicit MinMaxTask(index_t max_n = 128, std::uint64_t seed = 0) : max_n_(max_n), seed_(seed) { split(std::nullopt); }
  // requires: 0 < train_fraction < 1, leaving both parts non-empty.
  MinMaxTask(index_t max_n, std::uint64_t seed, double train_fraction) : max_n_(max_n), seed_(seed) {
    require(train_fraction > 0 && train_fraction < 1, "MinMaxTask: train_fraction must be in (0, 1), found ",
            train_fraction);
    split(train_fraction);
  }

  // The reference experiment's optimizer: AdamW lr 2e-3, weight decay 1.0, betas (0.9, 0.99), eps 1e-8.
  static AdamWConfig adamw() { return AdamWConfig{2e-3, 1.0, 0.9, 0.99, 1e-8}; }

  index_t max_n() const { return max_n_; }
  std::uint64_t seed() const { return seed_; }
  // The share of the samples in the training set (10922 / 32768 for the reference split).
  double train_fraction() const { return train_fraction_; }
  index_t vocab() const { return max_n_ + 3; }
  index_t size() const { return 2 * max_n_ * max_n_; }
  index_t token_max() const { return max_n_; }
  index_t token_min() const { return max_n_ + 1; }
  index_t token_equals() const { return max_n_ + 2; }
  index_t token_of(MinMaxOp op) const { return op == MinMaxOp::max ? token_max() : token_min(); }

  static index_t answer(index_t a, MinMaxOp op, index_t b) {
    return op == MinMaxOp::max ? (a > b ? a : b) : (a < b ? a : b);
  }
  // The index of (a, op, b) in the numbering above.
  index_t index_of(index_t a, MinMaxOp op, index_t b) const {
    check_operand(a, "a");
    check_operand(b, "b");
    return static_cast<index_t>(op) * max_n_ * max_n_ + a * max_n_ + b;
  }
  MinMaxSample sample(index_t i) const {
    require(i >= 0 && i < size(), "MinMaxTask::sample: index ", i, " outside [0, ", size(), ")");
    const auto op = static_cast<MinMaxOp>(i / (max_n_ * max_n_));
    const index_t a = (i / max_n_) % max_n_, b = i % max_n_;
    return {a, b, op, answer(a, op, b)};
  }
  // The tokens a, op, b, '=' of one query.
  std::vector<index_t> tokens(index_t a, MinMaxOp op, index_t b) const {
    check_operand(a, "a");
    check_operand(b, "b");
    return {a, token_of(op), b, token_equals()};
  }

  TokenBatch batch(const std::vector<index_t>& indices) const {
    TokenBatch out;
    out.context = context;
    out.tokens.reserve(indices.size() * context);
    out.targets.reserve(indices.size());
    for (index_t i : indices) {
      const MinMaxSample s = sample(i);
      out.tokens.insert(out.tokens.end(), {s.a, token_of(s.op), s.b, token_equals()});
      out.targets.push_back(s.target);
    }
    return out;
  }
  TokenBatch all() const {
    std::vector<index_t> every(static_cast<std::size_t>(size()));
    std::iota(every.begin(), every.end(), 0);
    return batch(every);
  }
  const std::vector<index_t>& train_indices() const { return train_indices_; }
  const std::vector<index_t>& test_indices() const { return test_indices_; }
  TokenBatch train() const { return batch(train_indices_); }
  TokenBatch test() const { return batch(test_indices_); }

 private:
  // Shuffles 0..size-1 with PythonRandom(seed) and cuts it: a third (len // 3) or int(size * fraction).
  void split(std::optional<double> train_fraction) {
    require(max_n_ >= 1 && max_n_ <= 16384, "MinMaxTask: max_n must be in [1, 16384], found ", max_n_);
    std::vector<index_t> order(static_cast<std::size_t>(size()));
    std::iota(order.begin(), order.end(), 0);
    PythonRandom(seed_).shuffle(order);
    const std::size_t cut = train_fraction
                                ? static_cast<std::size_t>(static_cast<double>(order.size()) * *train_fraction)
                                : order.size() / 3;
    require(cut >= 1 && cut < order.size(), "MinMaxTask: a training fraction of ", train_fraction.value_or(1.0 / 3),
            " of ", size(), " samples leaves ", cut, " to train and ", order.size() - cut, " to test; both need one");
    train_fraction_ = static_cast<double>(cut) / static_cast<double>(order.size());
    train_indices_.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(cut));
    test_indices_.assign(order.begin() + static_cast<std::ptrdiff_t>(cut), order.end());
  }

  void check_operand(index_t value, const char* name) const {
    require(value >= 0 && value < max_n_, "MinMaxTask: operand ", name, " = ", value, " is outside [0, ", max_n_, ")");
  }

  index_t max_n_;
  std::uint64_t seed_;
  double train_fraction_ = 0;
  std::vector<index_t> train_indices_, test_indices_;
};

}  // namespace tinyattn
