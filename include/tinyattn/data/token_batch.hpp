// tinyattn/data/token_batch.hpp — a batch of token sequences and their targets, on the host.
//
//   TokenBatch batch;
//   batch.context = 4;
//   batch.tokens  = {17, 128, 99, 130,   3, 129, 5, 130};   // (N, T) row-major: N = 2 samples
//   batch.targets = {99, 3};                                 // (N): the token after the last position
//
// Targets come in one of three layouts, told apart by their count:
//   empty      inputs only: predict() and inspect() need no targets
//   (N)        the target of the last position (the reference experiment, modular addition)
//   (N, T)     a target per position, -1 where nothing is scored (induction: the repeated half)
// With T = 1 the last two are the same thing. A loss at the last position reads target(n, T - 1);
// a loss at every position reads every target >= 0.
#pragma once

#include <string>
#include <vector>

#include "tinyattn/core/config.hpp"

namespace tinyattn {

struct TokenBatch {
  index_t context = 0;
  std::vector<index_t> tokens;   // (N, T) row-major
  std::vector<index_t> targets;  // empty, (N) or (N, T); -1 = not scored

  // N: samples in the batch (from the tokens; a batch may carry no targets).
  index_t size() const {
    return context > 0 ? static_cast<index_t>(tokens.size() / static_cast<std::size_t>(context)) : 0;
  }
  const index_t* sample(index_t n) const { return tokens.data() + static_cast<std::size_t>(n) * context; }
  bool has_targets() const { return !targets.empty(); }
  // True when targets are (N, T), one per position (T > 1).
  bool per_position_targets() const { return context > 1 && targets.size() == tokens.size(); }
  // The target of sample n at position t, or -1 when that position is not scored.
  // requires: has_targets().
  index_t target(index_t n, index_t t) const {
    if (per_position_targets()) return targets[static_cast<std::size_t>(n) * context + t];
    return t == context - 1 ? targets[static_cast<std::size_t>(n)] : index_t{-1};
  }
  index_t last_target(index_t n) const { return target(n, context - 1); }
};

// What a batch must provide, beyond tokens of the right vocabulary and context.
enum class TargetsRequired {
  no,             // targets may be absent (predict, inspect); when present they are checked too
  yes,            // (N) or (N, T) targets, -1 allowed: a loss reads them
  last_position,  // as yes, and every sample's last position is scored (the table engine's premise)
};

// Checks a batch against a network's input vocabulary, output vocabulary and context; throws
// tinyattn::Error naming the first offending sample, position and value.
//   ensures: tokens.size() == N * T, every token in [0, vocab), every target in [-1, vocab_out),
//            targets empty, (N) or (N, T) as `required` allows.
inline void validate_batch(const TokenBatch& batch, index_t vocab, index_t vocab_out, index_t context,
                           const std::string& what, TargetsRequired required = TargetsRequired::yes) {
  require(batch.context == context, what, ": samples have ", batch.context, " tokens, the network's context is ",
          context);
  require(batch.tokens.size() % static_cast<std::size_t>(context) == 0, what, ": ", batch.tokens.size(),
          " tokens is not a whole number of samples of ", context, " tokens");
  const auto n = static_cast<std::size_t>(batch.size());
  const bool count_ok = batch.targets.empty() || batch.targets.size() == n || batch.targets.size() == n * context;
  require(count_ok, what, ": ", batch.targets.size(), " targets for ", n, " samples of ", context, " tokens (expected ",
          n, " for the last position, or ", n * context, " for every position)");
  require(required == TargetsRequired::no || batch.has_targets() || n == 0, what, ": the batch has ", n,
          " samples but no targets (a loss needs them)");
  for (index_t s = 0; s < batch.size(); ++s) {
    for (index_t t = 0; t < context; ++t) {
      const index_t token = batch.sample(s)[t];
      require(token >= 0 && token < vocab, what, ": sample ", s, ", position ", t, ": token ", token,
              " is outside the vocabulary [0, ", vocab, ")");
    }
    if (!batch.has_targets()) continue;
    for (index_t t = batch.per_position_targets() ? 0 : context - 1; t < context; ++t) {
      const index_t target = batch.target(s, t);
      require(target >= -1 && target < vocab_out, what, ": sample ", s, ", position ", t, ": target ", target,
              " is outside [0, ", vocab_out, ") (or -1: not scored)");
      require(required != TargetsRequired::last_position || t != context - 1 || target >= 0, what, ": sample ", s,
              ": the last position has no target (-1), but every sample must be scored there");
    }
  }
}

// The reference experiment's form: output vocabulary = input vocabulary, targets required, every
// sample scored at the last position.
inline void validate_batch(const TokenBatch& batch, index_t vocab, index_t context, const std::string& what) {
  validate_batch(batch, vocab, vocab, context, what, TargetsRequired::last_position);
}

}  // namespace tinyattn
