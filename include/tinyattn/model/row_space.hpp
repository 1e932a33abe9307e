// tinyattn/model/row_space.hpp — the distinct (token, position) pairs a set of batches uses.
//
// Why: the layer input is x = W_E[token] + W_pos[position], so a batch of N samples has at most
// V * T distinct input rows (524 for the reference shape, of which the min/max task uses 259) against
// N * T rows (43,688 for its training set). Projections, value/output products and their logits are
// computed once per distinct row ("tables") and gathered per sample; gradients flow back the same way.
// This is an exact re-association, not an approximation.
#pragma once

#include <vector>

#include "tinyattn/core/config.hpp"
#include "tinyattn/data/token_batch.hpp"

namespace tinyattn {

class RowSpace {
 public:
  RowSpace(index_t vocab, index_t context)
      : vocab_(vocab), context_(context), row_of_(static_cast<std::size_t>(vocab) * context, -1) {}

  // Adds every (token, position) of the batch; tokens must already be validated.
  void add(const TokenBatch& batch) {
    for (index_t n = 0; n < batch.size(); ++n)
      for (index_t t = 0; t < context_; ++t) add(batch.sample(n)[t], t);
  }
  index_t add(index_t token, index_t position) {
    index_t& row = row_of_[static_cast<std::size_t>(token) * context_ + position];
    if (row < 0) {
      row = size();
      row_token_.push_back(token);
      row_position_.push_back(position);
    }
    return row;
  }
  // Row of (token, position), or -1 when the pair never occurs.
  index_t row_of(index_t token, index_t position) const {
    return row_of_[static_cast<std::size_t>(token) * context_ + position];
  }
  bool contains(const TokenBatch& batch) const {
    for (index_t n = 0; n < batch.size(); ++n)
      for (index_t t = 0; t < context_; ++t)
        if (row_of(batch.sample(n)[t], t) < 0) return false;
    return true;
  }

  index_t size() const { return static_cast<index_t>(row_token_.size()); }
  index_t vocab() const { return vocab_; }
  index_t context() const { return context_; }
  const std::vector<index_t>& row_token() const { return row_token_; }        // (R)
  const std::vector<index_t>& row_position() const { return row_position_; }  // (R)

 private:
  index_t vocab_, context_;
  std::vector<index_t> row_of_;  // (V, T)
  std::vector<index_t> row_token_, row_position_;
};

}  // namespace tinyattn
