// tinyattn/model/device_batch.hpp — a batch of samples on the backend, cut into chunks, as the
// reference engine reads it.
//
// Per sample: tokens (T) and the targets the loss reads: those of its last Tq positions, -1 = not scored.
// A loss at the last position reads one (Tq = 1); a loss at every position reads from the first position
// that any sample of the batch scores (Tq = T - that position): the positions before it reach no loss,
// so the last block need not compute its queries there. Samples are processed in chunks of `chunk_samples` (the last
// one shorter); each chunk carries the CSR list of its rows grouped by token, for the token embedding's gradient
// (layers/embedding.hpp). Capacity is fixed at construction: load() refills the buffers without allocating, so a
// minibatch can be loaded every step.
#pragma once

#include <algorithm>
#include <vector>

#include "tinyattn/backend/primitives.hpp"
#include "tinyattn/data/token_batch.hpp"

namespace tinyattn {

template <class Backend>
class DeviceBatch {
  using P = Primitives<Backend>;

 public:
  DeviceBatch() = default;
  // capacity: the most samples load() will be given; every_position: the loss reads every position's
  // target (else the last position's).
  DeviceBatch(index_t capacity, index_t context, bool every_position, index_t vocab, index_t chunk_samples)
      : capacity_(capacity),
        T_(context),
        every_(every_position),
        Tq_(every_position ? context : 1),
        V_(vocab),
        chunk_(std::max<index_t>(1, chunk_samples)) {
    const auto n = static_cast<std::size_t>(std::max<index_t>(capacity, 1));
    const auto max_chunks = static_cast<std::size_t>((std::max<index_t>(capacity, 1) + chunk_ - 1) / chunk_);
    host_tokens_.resize(n * T_);
    host_targets_.resize(n * T_);
    host_token_begin_.resize(max_chunks * (V_ + 1));
    host_token_row_.resize(n * T_);
    P::allocate(tokens_, host_tokens_.size());
    P::allocate(targets_, host_targets_.size());
    P::allocate(token_begin_, host_token_begin_.size());
    P::allocate(token_row_, host_token_row_.size());
  }

  // Loads batch samples `indices` (in that order), or all of them when null.
  // requires: batch validated against the model; at most capacity samples.
  void load(const TokenBatch& batch, const std::vector<index_t>* indices = nullptr) {
    const index_t n = indices ? static_cast<index_t>(indices->size()) : batch.size();
    require(n <= capacity_, "DeviceBatch::load: ", n, " samples, capacity ", capacity_);
    samples_ = n;
    scored_ = 0;
    const auto sample_of = [&](index_t s) { return indices ? (*indices)[static_cast<std::size_t>(s)] : s; };
    Tq_ = 1;  // the first scored position of any sample decides
    if (every_ && batch.has_targets())
      for (index_t s = 0; s < n; ++s)
        for (index_t t = 0; t < T_ - Tq_; ++t)
          if (batch.target(sample_of(s), t) >= 0) {
            Tq_ = T_ - t;
            break;
          }
    for (index_t s = 0; s < n; ++s) {
      const index_t from = sample_of(s);
      std::copy(batch.sample(from), batch.sample(from) + T_,
                host_tokens_.begin() + static_cast<std::ptrdiff_t>(s) * T_);
      for (index_t i = 0; i < Tq_; ++i) {
        const index_t target = batch.has_targets() ? batch.target(from, T_ - Tq_ + i) : index_t{-1};
        host_targets_[static_cast<std::size_t>(s) * Tq_ + i] = target;
        scored_ += target >= 0 ? 1 : 0;
      }
    }
    // Each chunk's rows grouped by token (a counting sort; rows numbered within the chunk).
    for (index_t c = 0; c < chunks(); ++c) {
      const index_t first_row = first_sample(c) * T_, rows = chunk_size(c) * T_;
      index_t* begin = host_token_begin_.data() + static_cast<std::ptrdiff_t>(c) * (V_ + 1);
      index_t* row = host_token_row_.data() + first_row;
      const index_t* tokens = host_tokens_.data() + first_row;
      std::fill(begin, begin + V_ + 1, 0);
      for (index_t r = 0; r < rows; ++r) ++begin[tokens[r] + 1];
      for (index_t v = 0; v < V_; ++v) begin[v + 1] += begin[v];
      for (index_t r = 0; r < rows; ++r) row[begin[tokens[r]]++] = r;  // begin[v] now ends token v's list
      for (index_t v = V_; v > 0; --v) begin[v] = begin[v - 1];        // shift back: begin[v] starts it
      begin[0] = 0;
    }
    P::copy_from_host(host_tokens_.data(), P::data(tokens_), static_cast<std::size_t>(n) * T_);
    P::copy_from_host(host_targets_.data(), P::data(targets_), static_cast<std::size_t>(n) * Tq_);
    P::copy_from_host(host_token_begin_.data(), P::data(token_begin_), static_cast<std::size_t>(chunks()) * (V_ + 1));
    P::copy_from_host(host_token_row_.data(), P::data(token_row_), static_cast<std::size_t>(n) * T_);
  }

  index_t samples() const { return samples_; }
  index_t capacity() const { return capacity_; }
  std::int64_t scored() const { return scored_; }  // targets >= 0 among those the loss reads
  // Tq: the positions whose targets the loss reads, the last Tq of each sample.
  index_t target_positions() const { return Tq_; }
  index_t chunk_samples() const { return chunk_; }
  index_t chunks() const { return (samples_ + chunk_ - 1) / chunk_; }
  index_t first_sample(index_t c) const { return c * chunk_; }
  index_t chunk_size(index_t c) const { return std::min(chunk_, samples_ - c * chunk_); }

  const index_t* tokens(index_t c) const {
    return P::data(tokens_) + static_cast<std::ptrdiff_t>(first_sample(c)) * T_;
  }
  const index_t* targets(index_t c) const {
    return P::data(targets_) + static_cast<std::ptrdiff_t>(first_sample(c)) * Tq_;
  }
  const index_t* token_begin(index_t c) const {
    return P::data(token_begin_) + static_cast<std::ptrdiff_t>(c) * (V_ + 1);
  }
  const index_t* token_row(index_t c) const {
    return P::data(token_row_) + static_cast<std::ptrdiff_t>(first_sample(c)) * T_;
  }
  const std::vector<index_t>& host_tokens() const { return host_tokens_; }    // (capacity, T), first samples() valid
  const std::vector<index_t>& host_targets() const { return host_targets_; }  // (samples, Tq)

 private:
  index_t capacity_ = 0, T_ = 0;
  bool every_ = false;
  index_t Tq_ = 1, V_ = 0, chunk_ = 1, samples_ = 0;
  std::int64_t scored_ = 0;
  std::vector<index_t> host_tokens_, host_targets_, host_token_begin_, host_token_row_;
  typename P::template buffer<index_t> tokens_, targets_, token_begin_, token_row_;
};

}  // namespace tinyattn
