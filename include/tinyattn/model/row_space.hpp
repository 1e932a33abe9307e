// tinyattn/model/row_space.hpp — the distinct (token, position) pairs a set of batches uses.
//
// Why: the layer input is x = W_E[token] + W_pos[position], so a batch of N samples has at most
// V * T distinct input rows (524 for the reference shape, of which the min/max task uses 259) against
// N * T rows (43,688 for its training set). Projections, value/output products and their logits are
// computed once per distinct row ("tables") and gathered per sample; gradients flow back the same way.
// This is an exact re-association, not an approximation.
//
// Rows are numbered canonically — by position from the last (T-1) down to 0, then by token — so the
// numbering does not depend on sample order, and the query rows (position T-1, the only queries the
// loss reads) come first: rows [0, query_rows()).
#pragma once

#include <functional>
#include <vector>

#include "tinyattn/core/config.hpp"
#include "tinyattn/data/token_batch.hpp"

namespace tinyattn {

class RowSpace {
 public:
  // requires: every batch validated against (vocab, context).
  RowSpace(index_t vocab, index_t context, const std::vector<std::reference_wrapper<const TokenBatch>>& batches)
      : vocab_(vocab), context_(context), row_of_(static_cast<std::size_t>(vocab) * context, -1) {
    std::vector<char> seen(row_of_.size(), 0);
    for (const TokenBatch& batch : batches)
      for (index_t n = 0; n < batch.size(); ++n)
        for (index_t t = 0; t < context_; ++t) seen[cell(batch.sample(n)[t], t)] = 1;
    for (index_t t = context_ - 1; t >= 0; --t) {
      for (index_t token = 0; token < vocab_; ++token) {
        if (!seen[cell(token, t)]) continue;
        row_of_[cell(token, t)] = size();
        row_token_.push_back(token);
        row_position_.push_back(t);
      }
      if (t == context_ - 1) query_rows_ = size();
    }
  }

  // Row of (token, position), or -1 when the pair never occurs.
  index_t row_of(index_t token, index_t position) const { return row_of_[cell(token, position)]; }

  index_t size() const { return static_cast<index_t>(row_token_.size()); }  // R
  index_t query_rows() const { return query_rows_; }                        // rows at position T-1
  index_t vocab() const { return vocab_; }
  index_t context() const { return context_; }
  const std::vector<index_t>& row_token() const { return row_token_; }        // (R)
  const std::vector<index_t>& row_position() const { return row_position_; }  // (R)

 private:
  std::size_t cell(index_t token, index_t position) const {
    return static_cast<std::size_t>(token) * context_ + position;
  }

  index_t vocab_, context_, query_rows_ = 0;
  std::vector<index_t> row_of_;  // (V, T)
  std::vector<index_t> row_token_, row_position_;
};

}  // namespace tinyattn
