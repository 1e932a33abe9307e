// tinyattn/model/batch_forward.hpp — a batch's row indices on the backend, and its evaluation
// (loss and accuracy at the last position, forward only).
#pragma once

#include <algorithm>
#include <numeric>
#include <vector>

#include "tinyattn/data/token_batch.hpp"
#include "tinyattn/model/row_tables.hpp"
#include "tinyattn/model/sample_kernels.hpp"
#include "tinyattn/model/table_heads.hpp"

namespace tinyattn {

// The fixed indices of one batch into a RowSpace's tables, on the backend. Built once.
template <class Shape, class Backend, class Scalar>
class BatchPlan {
  using P = Primitives<Backend>;
  static constexpr index_t H = Shape::heads, T = Shape::context, J = kernels::mix_slots<Shape>;

 public:
  // requires: batch validated against Shape, and every (token, position) of it in `space`.
  // With `sort_by_rows` (training and evaluation) samples are processed in the order of their rows
  // (lexicographic in (row of position 0, row of position 1, ...)), not the batch's: neighbours then
  // share table rows, which stay in L1. Losses and hits are only summed and gradients scattered by
  // row, so the order is invisible there; inspection keeps the batch's order.
  BatchPlan(const TokenBatch& batch, const RowSpace& space, bool sort_by_rows = true)
      : samples_(batch.size()), rows_(space.size()) {
    std::vector<index_t> rows_of(static_cast<std::size_t>(samples_) * T);
    for (index_t b = 0; b < samples_; ++b) {
      for (index_t t = 0; t < T; ++t) {
        const index_t row = space.row_of(batch.sample(b)[t], t);
        require(row >= 0, "BatchPlan: sample ", b, ", position ", t, ": token ", batch.sample(b)[t],
                " is not in the row space the tables were built for");
        rows_of[static_cast<std::size_t>(b) * T + t] = row;
      }
    }
    std::vector<index_t> order(static_cast<std::size_t>(samples_));
    std::iota(order.begin(), order.end(), 0);
    if (sort_by_rows)
      std::stable_sort(order.begin(), order.end(), [&](index_t x, index_t y) {
        return std::lexicographical_compare(
            &rows_of[static_cast<std::size_t>(x) * T], &rows_of[static_cast<std::size_t>(x) * T] + T,
            &rows_of[static_cast<std::size_t>(y) * T], &rows_of[static_cast<std::size_t>(y) * T] + T);
      });
    kv_row_host_.resize(static_cast<std::size_t>(samples_) * T);
    mix_row_host_.resize(static_cast<std::size_t>(samples_) * J);
    std::vector<index_t> targets(static_cast<std::size_t>(samples_));
    for (index_t b = 0; b < samples_; ++b) {
      const index_t original = order[static_cast<std::size_t>(b)];
      targets[static_cast<std::size_t>(b)] = batch.last_target(original);
      index_t* kv = &kv_row_host_[static_cast<std::size_t>(b) * T];
      for (index_t t = 0; t < T; ++t) kv[t] = rows_of[static_cast<std::size_t>(original) * T + t];
      index_t* mix = &mix_row_host_[static_cast<std::size_t>(b) * J];
      for (index_t h = 0; h < H; ++h)
        for (index_t k = 0; k < T; ++k) mix[h * T + k] = h * rows_ + kv[k];  // u[h] of key k
      mix[J - 1] = H * rows_ + kv[T - 1];                                    // x of the last token
    }
    P::upload(kv_row_, kv_row_host_.data(), kv_row_host_.size());
    P::upload(mix_row_, mix_row_host_.data(), mix_row_host_.size());
    if (rebase_logits<Shape, Backend>(space)) {  // rows of the rebased logit table (row_tables.hpp)
      constexpr index_t J2 = kernels::rebased_slots<Shape>;
      const index_t Rq = space.query_rows();
      rebased_row_host_.resize(static_cast<std::size_t>(samples_) * J2);
      for (index_t b = 0; b < samples_; ++b) {
        const index_t* kv = &kv_row_host_[static_cast<std::size_t>(b) * T];
        index_t* out = &rebased_row_host_[static_cast<std::size_t>(b) * J2];
        const index_t q = kv[T - 1];  // query rows come first, [0, Rq); the others follow
        for (index_t h = 0; h < H; ++h)
          for (index_t k = 0; k + 1 < T; ++k)
            out[h * (T - 1) + k] = kernels::rebased_difference_row(h, q, kv[k], rows_, Rq);
        out[J2 - 1] = q;
      }
      P::upload(rebased_row_, rebased_row_host_.data(), rebased_row_host_.size());
    }
    P::upload(targets_, targets.data(), targets.size());
  }

  index_t samples() const { return samples_; }
  index_t rows() const { return rows_; }
  kernels::SampleInputs<Shape, Scalar> inputs(const RowTables<Shape, Backend, Scalar>& tables) const {
    require(tables.rows() == rows_, "BatchPlan: tables have ", tables.rows(), " rows, the plan expects ", rows_);
    require(!tables.rebased_logit() || rebased(), "BatchPlan: the tables are rebased, the plan is not");
    kernels::SampleInputs<Shape, Scalar> in{{tables.qkv(), tables.rows(), tables.score(), tables.query_rows()},
                                            P::data(kv_row_),
                                            P::data(mix_row_),
                                            P::data(targets_)};
    if (tables.rebased_logit()) in.rebased_row = P::data(rebased_row_);
    return in;
  }
  // Host copies, for building scatter patterns.
  const std::vector<index_t>& kv_row_host() const { return kv_row_host_; }    // (N, T)
  const std::vector<index_t>& mix_row_host() const { return mix_row_host_; }  // (N, J)
  // (N, J2) rows of the rebased logit table, empty when the logits are not rebased (rebase_logits).
  const std::vector<index_t>& rebased_row_host() const { return rebased_row_host_; }
  bool rebased() const { return !rebased_row_host_.empty(); }

 private:
  index_t samples_, rows_;
  std::vector<index_t> kv_row_host_, mix_row_host_, rebased_row_host_;
  typename P::template buffer<index_t> kv_row_, mix_row_, targets_, rebased_row_;
};

// The mixing weights (N, J) (and q (N, H, dh) when non-null: per-sample score path) of every sample
// of a pass, in one vectorized loop, for backends that attend first (Primitives<B>::kAttendFirst).
// ensures: in.weights points at them, so the per-sample kernels read them instead of attending.
template <class Shape, class Backend, class Scalar>
void attend_first(kernels::SampleInputs<Shape, Scalar>& in, index_t samples, Scalar* mix_w, Scalar* q) {
  using P = Primitives<Backend>;
  if (in.qkv.score)
    P::for_each_simd(samples, kernels::AttendLastQuery<Shape, Scalar, true>{in.qkv, in.kv_row, mix_w, nullptr});
  else
    P::for_each_simd(samples, kernels::AttendLastQuery<Shape, Scalar, false>{in.qkv, in.kv_row, mix_w, q});
  in.weights = mix_w;
}

// Loss and accuracy of a batch at the last position, forward only. Holds its per-sample buffers, so
// calling evaluate() every epoch allocates nothing. Head: what follows the attention on the direct path
// (model/table_heads.hpp).
template <class Shape, class Backend, class Scalar, class Head = TiedUnembeddingHead<Shape, Backend, Scalar>>
class BatchEvaluator {
  using P = Primitives<Backend>;
  using Ly = Layers<Shape, Backend, Scalar>;
  using RowOps = typename P::row_ops;
  static constexpr index_t D = Shape::d_model, J = kernels::mix_slots<Shape>, Vp = kernels::padded_vocab<Shape, Scalar>;

 public:
  BatchEvaluator(const TokenBatch& batch, const RowSpace& space, LogitPath path)
      : plan_(batch, space),
        path_(Head::has_logit_table ? resolve<Shape>(path) : LogitPath::direct),
        tile_(std::min<index_t>(plan_.samples(), P::kSampleTile)),
        head_(tile_) {
    const auto n = static_cast<std::size_t>(plan_.samples());
    P::allocate(loss_, n);
    P::allocate(correct_, n);
    if (P::kAttendFirst || path_ == LogitPath::direct) P::allocate(mix_w_, n * J);
    if (path_ == LogitPath::direct) P::allocate(resid_, static_cast<std::size_t>(tile_) * D);
  }

  // requires: tables and head_tables computed from `params`, with a logit table when the path is
  // logit_table.
  BatchTotals evaluate(const Scalar* params, const RowTables<Shape, Backend, Scalar>& tables,
                       const typename Head::Tables& head_tables) {
    auto in = plan_.inputs(tables);
    const index_t n = plan_.samples();
    if constexpr (P::kAttendFirst) attend_first<Shape, Backend>(in, n, P::data(mix_w_), static_cast<Scalar*>(nullptr));
    if (path_ == LogitPath::logit_table) {
      P::for_each_team(n, kernels::EvaluateSampleFromLogitTable<Shape, Scalar, RowOps>{
                              in, tables.logit(), tables.rebased_logit(), P::data(loss_), P::data(correct_)});
    } else {
      for (index_t first = 0; first < n; first += tile_) {  // tiles keep the logits rows in cache
        const index_t count = std::min(tile_, n - first);
        P::for_each_team(
            count, kernels::offset_by(kernels::AttendAndMixRows<Shape, Scalar, RowOps>{in, tables.z(), P::data(mix_w_),
                                                                                       nullptr, P::data(resid_), first},
                                      first));
        head_.evaluate(params, head_tables, with_weights(in), P::data(resid_), count, in.targets, first, P::data(loss_),
                       P::data(correct_));
      }
    }
    return P::sum_metrics(P::data(loss_), P::data(correct_), n);
  }

  index_t samples() const { return plan_.samples(); }
  LogitPath path() const { return path_; }

 private:
  // The inputs as the head reads them: with the mixing weights the attention stored.
  kernels::SampleInputs<Shape, Scalar> with_weights(kernels::SampleInputs<Shape, Scalar> in) const {
    in.weights = P::data(mix_w_);
    return in;
  }

  BatchPlan<Shape, Backend, Scalar> plan_;
  LogitPath path_;
  index_t tile_ = 0;  // direct path: samples per tile
  Head head_;
  typename P::template buffer<Scalar> loss_, mix_w_, resid_;
  typename P::template buffer<index_t> correct_;
};

}  // namespace tinyattn
