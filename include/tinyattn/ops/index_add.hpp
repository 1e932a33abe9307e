// tinyattn/ops/index_add.hpp — deterministic weighted scatter-add of rows, on any backend.
//
//   out[row_of(n, j)] += weight[n, j] * src[n]     for every item n and slot j
//
// This is how gradients flow from samples back to the tables of distinct rows (and from rows back to
// embeddings). Scattering with atomics would make every run differ in the last bits, so the plan sorts
// the (n, j) entries by output row once, keeping item order within a row, and cuts each row's list
// into chunks of at most kMaxChunk (Primitives<B>::kScatterChunk) entries. Then
//   pass 1: every chunk sums its entries into a partial row
//   pass 2: every output row sums its chunks' partials in order
// both through the backend's gather_sum_rows primitive.
// Each output element is always summed in the same order: bit-identical on reruns, for any thread
// count. The plan is built once per batch (indices do not change between epochs).
#pragma once

#include <vector>

#include "tinyattn/backend/primitives.hpp"

namespace tinyattn {

// Host-side description of one scatter pattern.
struct ScatterPattern {
  index_t items = 0;                     // N: rows of src
  index_t slots_per_item = 0;            // J: entries per item
  index_t out_rows = 0;                  // rows of out
  std::vector<index_t> out_row_of_slot;  // (N, J): output row of entry (n, j), or -1 for none
};

template <class Backend, class Scalar>
class ScatterPlan {
  using P = Primitives<Backend>;

 public:
  // Entries per chunk: a backend constant (long enough to amortize a CPU task, short enough to give a
  // GPU many threads).
  static constexpr index_t kMaxChunk = P::kScatterChunk;

  ScatterPlan() = default;
  // requires: every out_row_of_slot value in [-1, out_rows); width = columns of src and out.
  ScatterPlan(const ScatterPattern& pattern, index_t width)
      : items_(pattern.items), slots_(pattern.slots_per_item), out_rows_(pattern.out_rows), width_(width) {
    require(pattern.out_row_of_slot.size() == static_cast<std::size_t>(items_) * slots_, "ScatterPlan: pattern has ",
            pattern.out_row_of_slot.size(), " slots, expected ", static_cast<std::size_t>(items_) * slots_);
    // Counting sort of the entries by output row, stable in (n, j) order.
    std::vector<index_t> row_begin(static_cast<std::size_t>(out_rows_) + 1, 0);
    for (index_t r : pattern.out_row_of_slot) {
      require(r >= -1 && r < out_rows_, "ScatterPlan: output row ", r, " outside [-1, ", out_rows_, ")");
      if (r >= 0) ++row_begin[static_cast<std::size_t>(r) + 1];
    }
    for (index_t r = 0; r < out_rows_; ++r) row_begin[r + 1] += row_begin[r];
    const index_t entries = row_begin[out_rows_];
    std::vector<index_t> entry_item(entries), entry_slot(entries), cursor(row_begin.begin(), row_begin.end() - 1);
    for (index_t s = 0; s < static_cast<index_t>(pattern.out_row_of_slot.size()); ++s) {
      const index_t r = pattern.out_row_of_slot[s];
      if (r < 0) continue;
      const index_t e = cursor[r]++;
      entry_item[e] = s / slots_;
      entry_slot[e] = s;
    }
    std::vector<index_t> chunk_begin, row_chunk_begin(static_cast<std::size_t>(out_rows_) + 1, 0);
    for (index_t r = 0; r < out_rows_; ++r) {
      row_chunk_begin[r] = static_cast<index_t>(chunk_begin.size());
      for (index_t e = row_begin[r]; e < row_begin[r + 1]; e += kMaxChunk) chunk_begin.push_back(e);
    }
    row_chunk_begin[out_rows_] = static_cast<index_t>(chunk_begin.size());
    chunks_ = static_cast<index_t>(chunk_begin.size());
    chunk_begin.push_back(entries);
    // The rows some entry maps to, and their chunk lists, for assign_touched.
    std::vector<index_t> touched_chunk_begin;
    for (index_t r = 0; r < out_rows_; ++r) {
      if (row_begin[r + 1] == row_begin[r]) continue;
      touched_.push_back(r);
      touched_chunk_begin.push_back(row_chunk_begin[r]);
    }
    touched_chunk_begin.push_back(chunks_);
    P::upload(touched_row_, touched_.data(), touched_.size());
    P::upload(touched_chunk_begin_, touched_chunk_begin.data(), touched_chunk_begin.size());
    P::upload(entry_item_, entry_item.data(), entry_item.size());
    P::upload(entry_slot_, entry_slot.data(), entry_slot.size());
    P::upload(chunk_begin_, chunk_begin.data(), chunk_begin.size());
    P::upload(row_chunk_begin_, row_chunk_begin.data(), row_chunk_begin.size());
    P::allocate(partial_, static_cast<std::size_t>(chunks_) * width_);
  }

  index_t items() const { return items_; }
  index_t slots_per_item() const { return slots_; }
  index_t out_rows() const { return out_rows_; }
  index_t width() const { return width_; }
  const std::vector<index_t>& touched_rows() const { return touched_; }  // rows some entry maps to, ascending

  // out (out_rows, width) [+]= scatter of weight (N, J) [null: all ones] times src (N, width; row
  // stride src_ld). src and out must not overlap.
  void apply(const Scalar* weight, const Scalar* src, index_t src_ld, Scalar* out, bool accumulate) {
    GatherSumArgs<Scalar> chunks;  // pass 1: partial[chunk] = sum of its entries
    chunks.segments = chunks_, chunks.width = width_, chunks.begin = P::data(chunk_begin_);
    chunks.entry_item = P::data(entry_item_), chunks.entry_slot = P::data(entry_slot_), chunks.weight = weight;
    chunks.src = src, chunks.src_ld = src_ld, chunks.out = P::data(partial_);
    P::gather_sum_rows(chunks);
    GatherSumArgs<Scalar> rows;  // pass 2: out[row] (+)= its chunks' partials, in order
    rows.segments = out_rows_, rows.width = width_, rows.begin = P::data(row_chunk_begin_);
    rows.src = P::data(partial_), rows.src_ld = width_, rows.out = out, rows.accumulate = accumulate;
    P::gather_sum_rows(rows);
  }

  // As apply without accumulating, but only the touched rows of out are written (the others keep
  // whatever they hold): for partial tables whose untouched rows are never read.
  void assign_touched(const Scalar* weight, const Scalar* src, index_t src_ld, Scalar* out) {
    GatherSumArgs<Scalar> chunks;
    chunks.segments = chunks_, chunks.width = width_, chunks.begin = P::data(chunk_begin_);
    chunks.entry_item = P::data(entry_item_), chunks.entry_slot = P::data(entry_slot_), chunks.weight = weight;
    chunks.src = src, chunks.src_ld = src_ld, chunks.out = P::data(partial_);
    P::gather_sum_rows(chunks);
    GatherSumArgs<Scalar> rows;
    rows.segments = static_cast<index_t>(touched_.size()), rows.width = width_;
    rows.begin = P::data(touched_chunk_begin_), rows.segment_out = P::data(touched_row_);
    rows.src = P::data(partial_), rows.src_ld = width_, rows.out = out;
    P::gather_sum_rows(rows);
  }

 private:
  index_t items_ = 0, slots_ = 0, out_rows_ = 0, width_ = 0, chunks_ = 0;
  typename P::template buffer<index_t> entry_item_, entry_slot_, chunk_begin_, row_chunk_begin_;
  std::vector<index_t> touched_;
  typename P::template buffer<index_t> touched_row_, touched_chunk_begin_;
  typename P::template buffer<Scalar> partial_;
};

}  // namespace tinyattn
