// tinyattn/data/induction_task.hpp — the induction-heads task: n random tokens, then the same n again.
//
// Every sequence of T = 2n tokens is r_0 .. r_{n-1} r_0 .. r_{n-1} with r drawn uniformly from [0, V).
// A model can only predict the repeated half, and only by looking back: at position t (n <= t <= 2n - 2)
// the target is the next token, r_{t-n+1}; other positions are not scored (-1). Targets are (N, T).
// Data as the PyTorch peer makes it (torch_transformer.py --task induction): one
// random.Random(data_seed), rng.randrange(V) drawn row by row for samples + test_samples rows of n;
// the first `samples` rows train, the rest test.
#pragma once

#include <cstdint>
#include <vector>

#include "tinyattn/core/config.hpp"
#include "tinyattn/core/random.hpp"
#include "tinyattn/data/token_batch.hpp"

namespace tinyattn {

class InductionTask {
 public:
  // requires: vocab >= 1; context even and >= 4; samples >= 1; test_samples >= 0.
  explicit InductionTask(index_t vocab = 64, index_t context = 32, index_t samples = 4096, index_t test_samples = 1024,
                         std::uint64_t data_seed = 598)
      : V_(vocab), T_(context), samples_(samples), test_samples_(test_samples), seed_(data_seed) {
    require(vocab >= 1, "InductionTask: the vocabulary needs at least one token, found ", vocab);
    require(context >= 4 && context % 2 == 0, "InductionTask: the context must be even and >= 4, found ", context);
    require(samples >= 1, "InductionTask: at least one training sequence, found ", samples);
    require(test_samples >= 0, "InductionTask: test_samples must be >= 0, found ", test_samples);
    require(static_cast<std::int64_t>(samples + std::int64_t{test_samples}) * context < (std::int64_t{1} << 31),
            "InductionTask: ", samples, " + ", test_samples, " sequences of ", context,
            " tokens exceed 32-bit indices");
    PythonRandom rng(data_seed);
    const index_t n = half();
    halves_.resize(static_cast<std::size_t>(samples + test_samples) * n);
    for (index_t& token : halves_) token = static_cast<index_t>(rng.randrange(static_cast<std::uint32_t>(vocab)));
  }

  index_t vocab() const { return V_; }
  index_t vocab_out() const { return V_; }
  index_t context() const { return T_; }
  index_t half() const { return T_ / 2; }  // n
  index_t samples() const { return samples_; }
  index_t test_samples() const { return test_samples_; }
  std::uint64_t data_seed() const { return seed_; }
  // Positions with a target: n .. 2n - 2.
  index_t first_scored_position() const { return half(); }
  index_t last_scored_position() const { return T_ - 2; }

  // Sequences [first, first + count) of all samples + test_samples (training ones first).
  TokenBatch rows(index_t first, index_t count) const {
    require(first >= 0 && count >= 0 && first + count <= samples_ + test_samples_, "InductionTask::rows: [", first,
            ", ", first + count, ") outside [0, ", samples_ + test_samples_, ")");
    const index_t n = half();
    TokenBatch out;
    out.context = T_;
    out.tokens.reserve(static_cast<std::size_t>(count) * T_);
    out.targets.reserve(static_cast<std::size_t>(count) * T_);
    for (index_t s = first; s < first + count; ++s) {
      const index_t* r = halves_.data() + static_cast<std::ptrdiff_t>(s) * n;
      for (int copy = 0; copy < 2; ++copy) out.tokens.insert(out.tokens.end(), r, r + n);
      for (index_t t = 0; t < T_; ++t) out.targets.push_back(t >= n && t <= T_ - 2 ? r[t - n + 1] : index_t{-1});
    }
    return out;
  }
  TokenBatch train() const { return rows(0, samples_); }
  TokenBatch test() const { return rows(samples_, test_samples_); }
  TokenBatch all() const { return rows(0, samples_ + test_samples_); }

 private:
  index_t V_, T_, samples_, test_samples_;
  std::uint64_t seed_;
  std::vector<index_t> halves_;  // (samples + test_samples, n)
};

}  // namespace tinyattn
