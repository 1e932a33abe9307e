// tinyattn/model/batch_backward.hpp — loss, accuracy and the gradient of every parameter for a batch.
//
// Forward and backward of the whole network for the mean cross-entropy at the last position:
//   per sample (sample_kernels.hpp)  attention of the last query, mixing of table rows, cross-entropy
//   scatter (index_add.hpp)          gradients of the sample outputs onto the per-row tables
//   per row (layers.hpp)             unembedding, output projection, projections, embedding
// All buffers are allocated at construction: compute() allocates nothing.
#pragma once

#include <vector>

#include "tinyattn/model/batch_forward.hpp"

namespace tinyattn {

template <class Shape, class Backend, class Scalar>
class BatchGradient {
  using P = Primitives<Backend>;
  using Ly = Layers<Shape, Backend, Scalar>;
  using Plan = ScatterPlan<Backend, Scalar>;
  template <class T>
  using buffer = typename P::template buffer<T>;
  static constexpr index_t V = Shape::vocab, D = Shape::d_model, H = Shape::heads, T = Shape::context,
                           dh = Shape::head_dim, J = kernels::mix_slots<Shape>;

 public:
  // requires: batch validated; every (token, position) of it in `space`.
  BatchGradient(const TokenBatch& batch, const RowSpace& space, LogitPath path)
      : plan_(batch, space), path_(resolve<Shape>(path)), rows_(space.size()) {
    const index_t n = plan_.samples(), R = rows_;
    const index_t width = path_ == LogitPath::logit_table ? V : D;
    // Scatter patterns: sample outputs -> table rows.
    ScatterPattern mix{n, J, (H + 1) * R, plan_.mix_row_host()};
    ScatterPattern keys{n * H, T, H * R, {}}, queries{n * H, 1, H * R, {}};
    keys.out_row_of_slot.resize(static_cast<std::size_t>(n) * H * T);
    queries.out_row_of_slot.resize(static_cast<std::size_t>(n) * H);
    for (index_t b = 0; b < n; ++b) {
      const index_t* kv = &plan_.kv_row_host()[static_cast<std::size_t>(b) * T];
      for (index_t h = 0; h < H; ++h) {
        for (index_t k = 0; k < T; ++k) keys.out_row_of_slot[(static_cast<std::size_t>(b) * H + h) * T + k] = h * R + kv[k];
        queries.out_row_of_slot[static_cast<std::size_t>(b) * H + h] = h * R + kv[T - 1];
      }
    }
    mix_plan_ = Plan(mix, width);
    key_plan_ = Plan(keys, dh);
    query_plan_ = Plan(queries, dh);
    // Table rows -> embeddings.
    ScatterPattern by_token{R, 1, V, space.row_token()}, by_position{R, 1, T, space.row_position()};
    token_plan_ = Plan(by_token, D);
    position_plan_ = Plan(by_position, D);

    const auto N = static_cast<std::size_t>(n);
    P::allocate(mix_w_, N * J);
    P::allocate(q_, N * H * dh);
    P::allocate(dscores_, N * H * T);
    P::allocate(dq_, N * H * dh);
    P::allocate(dlogits_, N * V);
    P::allocate(loss_, N);
    P::allocate(correct_, N);
    if (path_ == LogitPath::direct) {
      P::allocate(resid_, N * D);
      P::allocate(logits_, N * V);
      P::allocate(dresid_, N * D);
    } else {
      P::allocate(dlogit_table_, static_cast<std::size_t>(H + 1) * R * V);
    }
    P::allocate(dz_, static_cast<std::size_t>(H + 1) * R * D);
    P::allocate(dqkv_, static_cast<std::size_t>(3) * H * R * dh);
  }

  // Writes d(mean loss)/d(parameters) into grads (Layout order) and returns the batch totals.
  // requires: tables computed from params (with a logit table on the logit_table path), same space.
  BatchTotals compute(const Scalar* params, const RowTables<Shape, Backend, Scalar>& tables, Scalar* grads) {
    require(tables.rows() == rows_, "BatchGradient: tables have ", tables.rows(), " rows, the plan expects ", rows_);
    const auto in = plan_.inputs(tables);
    const index_t n = plan_.samples(), R = rows_;
    const Scalar grad_scale = Scalar(1) / static_cast<Scalar>(n);
    const kernels::SampleGradients<Shape, Scalar> s{P::data(mix_w_), P::data(q_), P::data(dscores_), P::data(dq_)};
    BatchTotals totals;
    if (path_ == LogitPath::logit_table) {
      P::for_each(n, kernels::TrainSampleFromLogitTable<Shape, Scalar>{in, tables.logit(), grad_scale, s,
                                                                         P::data(dlogits_), P::data(loss_),
                                                                         P::data(correct_)});
      totals = P::sum_metrics(P::data(loss_), P::data(correct_), n);
      mix_plan_.apply(P::data(mix_w_), P::data(dlogits_), V, P::data(dlogit_table_), false);
      Ly::unembedding_backward(params, tables.z(), P::data(dlogit_table_), (H + 1) * R, grads, P::data(dz_));
    } else {
      P::for_each(n, kernels::AttendAndMixRows<Shape, Scalar>{in, tables.z(), s.mix_w, s.q, P::data(resid_)});
      Ly::unembedding_forward(params, P::data(resid_), n, P::data(logits_));
      P::for_each(n, kernels::CrossEntropyRows<Shape, Scalar>{P::data(logits_), in.targets, grad_scale,
                                                                P::data(dlogits_), P::data(loss_),
                                                                P::data(correct_)});
      totals = P::sum_metrics(P::data(loss_), P::data(correct_), n);
      Ly::unembedding_backward(params, P::data(resid_), P::data(dlogits_), n, grads, P::data(dresid_));
      P::for_each(n, kernels::AttendAndMixRowsBackward<Shape, Scalar>{in, tables.z(), P::data(dresid_), s});
      mix_plan_.apply(P::data(mix_w_), P::data(dresid_), D, P::data(dz_), false);
    }
    Scalar* dqkv = P::data(dqkv_);
    const std::ptrdiff_t block = static_cast<std::ptrdiff_t>(H) * R * dh;
    query_plan_.apply(nullptr, P::data(dq_), dh, dqkv, false);                  // dQ block
    key_plan_.apply(P::data(dscores_), P::data(q_), dh, dqkv + block, false);    // dK block
    Ly::output_backward(params, tables.qkv(), P::data(dz_), R, grads, dqkv);   // dW_O, dV block
    Scalar* dx = P::data(dz_) + static_cast<std::ptrdiff_t>(H) * R * D;         // already holds the x rows' share
    Ly::projection_backward(params, tables.x(), dqkv, R, grads, dx);
    Ly::embedding_backward(token_plan_, position_plan_, dx, grads);
    return totals;
  }

  index_t samples() const { return plan_.samples(); }
  LogitPath path() const { return path_; }

 private:
  BatchPlan<Shape, Backend, Scalar> plan_;
  LogitPath path_;
  index_t rows_;
  Plan mix_plan_, key_plan_, query_plan_, token_plan_, position_plan_;
  buffer<Scalar> mix_w_, q_, dscores_, dq_, dlogits_, loss_;   // per sample
  buffer<Scalar> resid_, logits_, dresid_;                     // per sample, direct path only
  buffer<index_t> correct_;
  buffer<Scalar> dlogit_table_, dz_, dqkv_;                    // per row
};

}  // namespace tinyattn
