// tinyattn/data/token_batch.hpp — a batch of token sequences and their targets, on the host.
#pragma once

#include <string>
#include <vector>

#include "tinyattn/core/config.hpp"

namespace tinyattn {

// N samples of `context` tokens each; the target is the token expected after the last position.
struct TokenBatch {
  index_t context = 0;
  std::vector<index_t> tokens;   // (N, T) row-major
  std::vector<index_t> targets;  // (N)

  index_t size() const { return static_cast<index_t>(targets.size()); }
  const index_t* sample(index_t n) const { return tokens.data() + static_cast<std::size_t>(n) * context; }
};

// Checks a batch against a network's vocabulary and context; throws tinyattn::Error naming the
// first offending sample, position and value.
//   requires: nothing; ensures: every token and target is in [0, vocab), tokens.size() == N * T.
inline void validate_batch(const TokenBatch& batch, index_t vocab, index_t context, const std::string& what) {
  require(batch.context == context, what, ": samples have ", batch.context, " tokens, the network's context is ",
          context);
  require(batch.tokens.size() == batch.targets.size() * static_cast<std::size_t>(context), what, ": ",
          batch.tokens.size(), " tokens for ", batch.targets.size(), " samples of ", context,
          " tokens (expected ", batch.targets.size() * static_cast<std::size_t>(context), ")");
  for (index_t n = 0; n < batch.size(); ++n) {
    for (index_t t = 0; t < context; ++t) {
      const index_t token = batch.sample(n)[t];
      require(token >= 0 && token < vocab, what, ": sample ", n, ", position ", t, ": token ", token,
              " is outside the vocabulary [0, ", vocab, ")");
    }
    const index_t target = batch.targets[static_cast<std::size_t>(n)];
    require(target >= 0 && target < vocab, what, ": sample ", n, ": target ", target,
            " is outside the vocabulary [0, ", vocab, ")");
  }
}

}  // namespace tinyattn
