// tinyattn/data/modular_addition_task.hpp — the grokking task: "a b =" -> (a + b) mod P.
//
// Tokens 0..P-1 are the operands and token P is '=': the input vocabulary is P + 1, the output
// vocabulary P (the answer is never '='). Sample i of the P^2 samples is a = i / P, b = i % P, the
// numbering of the PyTorch peer (torch_transformer.py --task modadd). The split shuffles all indices with
// CPython's random.Random(data_seed).shuffle and trains on the first int(P * P * train_fraction) —
// Python's float product, truncated — so the same seed and fraction give the peer's split.
// The classic setup (Nanda et al.): P = 113, 30 % for training, data seed 598.
#pragma once

#include <cstdint>
#include <numeric>
#include <vector>

#include "tinyattn/core/config.hpp"
#include "tinyattn/core/random.hpp"
#include "tinyattn/data/token_batch.hpp"
#include "tinyattn/train/adamw_config.hpp"

namespace tinyattn {

struct ModularAdditionSample {
  index_t a, b, target;
};

class ModularAdditionTask {
 public:
  static constexpr index_t context = 3;  // a, b, '='

  // requires: 2 <= P <= 46340 (P^2 fits 32-bit indices), 0 < train_fraction <= 1, a non-empty training set.
  explicit ModularAdditionTask(index_t P = 113, double train_fraction = 0.3, std::uint64_t data_seed = 598)
      : P_(P), fraction_(train_fraction), seed_(data_seed) {
    require(P >= 2 && P <= 46340, "ModularAdditionTask: P must be in [2, 46340], found ", P);
    require(train_fraction > 0 && train_fraction <= 1,
            "ModularAdditionTask: the training fraction must be in (0, 1], found ", train_fraction);
    std::vector<index_t> order(static_cast<std::size_t>(size()));
    std::iota(order.begin(), order.end(), 0);
    PythonRandom(data_seed).shuffle(order);
    // int(P * P * train_fraction) in Python: the integer P * P times a float, in double, truncated.
    const auto cut = static_cast<std::size_t>(static_cast<double>(size()) * train_fraction);
    require(cut >= 1, "ModularAdditionTask: a training fraction of ", train_fraction, " leaves no training sample of ",
            size());
    train_indices_.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(cut));
    test_indices_.assign(order.begin() + static_cast<std::ptrdiff_t>(cut), order.end());
  }

  // The grokking run's optimizer: AdamW lr 1e-3, weight decay 1.0, betas (0.9, 0.98), eps 1e-8.
  static AdamWConfig adamw() { return AdamWConfig{1e-3, 1.0, 0.9, 0.98, 1e-8}; }

  index_t P() const { return P_; }
  double train_fraction() const { return fraction_; }
  std::uint64_t data_seed() const { return seed_; }
  index_t vocab() const { return P_ + 1; }
  index_t vocab_out() const { return P_; }
  index_t size() const { return P_ * P_; }
  index_t token_equals() const { return P_; }

  index_t index_of(index_t a, index_t b) const {
    check_operand(a, "a");
    check_operand(b, "b");
    return a * P_ + b;
  }
  ModularAdditionSample sample(index_t i) const {
    require(i >= 0 && i < size(), "ModularAdditionTask::sample: index ", i, " outside [0, ", size(), ")");
    const index_t a = i / P_, b = i % P_;
    return {a, b, (a + b) % P_};
  }
  std::vector<index_t> tokens(index_t a, index_t b) const {
    check_operand(a, "a");
    check_operand(b, "b");
    return {a, b, token_equals()};
  }

  TokenBatch batch(const std::vector<index_t>& indices) const {
    TokenBatch out;
    out.context = context;
    out.tokens.reserve(indices.size() * context);
    out.targets.reserve(indices.size());
    for (index_t i : indices) {
      const ModularAdditionSample s = sample(i);
      out.tokens.insert(out.tokens.end(), {s.a, s.b, token_equals()});
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
  void check_operand(index_t value, const char* name) const {
    require(value >= 0 && value < P_, "ModularAdditionTask: operand ", name, " = ", value, " is outside [0, ", P_, ")");
  }

  index_t P_;
  double fraction_;
  std::uint64_t seed_;
  std::vector<index_t> train_indices_, test_indices_;
};

}  // namespace tinyattn
