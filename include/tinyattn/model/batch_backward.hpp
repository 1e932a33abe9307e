// tinyattn/model/batch_backward.hpp — loss, accuracy and the gradient of every parameter for a batch.
//
// Forward and backward of the whole network for the mean cross-entropy at the last position:
//   per sample (sample_kernels.hpp)  attention of the last query, mixing of table rows, cross-entropy
//   scatter (index_add.hpp)          gradients of the sample outputs onto the per-row tables
//   per row (layers.hpp)             unembedding, output projection, projections, embedding
// All buffers are allocated at construction: compute() allocates nothing. Samples are processed in
// tiles (Primitives<B>::kSampleTile, a constant of the backend) so that per-sample gradient rows stay
// in cache. Either the tiles run one after another, every scatter adding onto the tables in tile
// order, or (Primitives<B>::kTileTasks, logit and score tables) each tile is a task scattering into
// its own partial tables, which are then added in tile order. Either way a run is bit-identical for
// any thread count.
#pragma once

#include <algorithm>
#include <optional>
#include <vector>

#include "tinyattn/model/batch_forward.hpp"

namespace tinyattn {

template <class Shape, class Backend, class Scalar, class Head = TiedUnembeddingHead<Shape, Backend, Scalar>>
class BatchGradient {
  using P = Primitives<Backend>;
  using Ly = Layers<Shape, Backend, Scalar>;
  using L = ParameterLayout<Shape>;
  using Plan = ScatterPlan<Backend, Scalar>;
  using RowOps = typename P::row_ops;
  template <class T>
  using buffer = typename P::template buffer<T>;
  static constexpr index_t V = Shape::vocab, D = Shape::d_model, H = Shape::heads, T = Shape::context,
                           dh = Shape::head_dim, J = kernels::mix_slots<Shape>,
                           Vp = kernels::padded_vocab<Shape, Scalar>;

 public:
  // requires: batch validated; every (token, position) of it in `space`; `scores` resolved (not
  // automatic) and matching the tables compute() will get; `input_table`: the head tables compute()
  // will get hold an input table (Head::Tables::input(), the MLP's input from per-row products).
  BatchGradient(const TokenBatch& batch, const RowSpace& space, LogitPath logits, ScorePath scores,
                bool input_table = false)
      : plan_(batch, space),
        path_(Head::has_logit_table ? resolve<Shape>(logits) : LogitPath::direct),
        scores_(scores),
        rows_(space.size()),
        query_rows_(space.query_rows()),
        rebased_(path_ == LogitPath::logit_table && rebase_logits<Shape, Backend>(space)),
        scatter_rows_(rebased_ ? kernels::rebased_table_rows<Shape>(rows_, query_rows_) : (H + 1) * rows_),
        input_table_(input_table) {
    require(scores != ScorePath::automatic, "BatchGradient: the score path must be resolved");
    require(!input_table || (Head::input_width > 0 && path_ == LogitPath::direct),
            "BatchGradient: an input table needs a head with one (an MLP) on the direct path");
    const index_t n = plan_.samples(), R = rows_, Rq = query_rows_;
    const index_t width = path_ == LogitPath::logit_table ? Vp : D;
    const auto N = static_cast<std::size_t>(n);
    // Scatter patterns, one per tile of samples: sample outputs -> table rows.
    tile_ = std::min<index_t>(n, P::kSampleTile);
    for (index_t first = 0; first < n; first += tile_) {
      const index_t count = std::min(tile_, n - first);
      const auto kv_of = [&](index_t b) { return &plan_.kv_row_host()[static_cast<std::size_t>(b) * T]; };
      ScatterPattern mix{count, J, (H + 1) * R, {}};
      mix.out_row_of_slot.reserve(static_cast<std::size_t>(count) * J);
      for (std::size_t i = static_cast<std::size_t>(first) * J; i < static_cast<std::size_t>(first + count) * J; ++i)
        mix.out_row_of_slot.push_back(plan_.mix_row_host()[i]);
      if (rebased_) {  // onto the plan's rebased rows: the query slots have none (their weights are implied)
        constexpr index_t J2 = kernels::rebased_slots<Shape>;
        mix.out_rows = scatter_rows_;
        for (index_t b = first; b < first + count; ++b) {
          const index_t* rebased = &plan_.rebased_row_host()[static_cast<std::size_t>(b) * J2];
          index_t* slot = &mix.out_row_of_slot[static_cast<std::size_t>(b - first) * J];
          for (index_t h = 0; h < H; ++h) {
            for (index_t k = 0; k + 1 < T; ++k) slot[h * T + k] = rebased[h * (T - 1) + k];
            slot[h * T + T - 1] = -1;
          }
          slot[J - 1] = rebased[J2 - 1];
        }
      }
      mix_plans_.emplace_back(mix, width);
      if (input_table_) input_plans_.emplace_back(mix, Head::input_width);  // d pre onto the input table's rows
      if (scores_ == ScorePath::table) {
        // d score[h, query row, key row] += dscores[b, h, k]: one scalar per entry (width 1).
        ScatterPattern cells{count, H * T, H * Rq * R, {}};
        for (index_t b = first; b < first + count; ++b)
          for (index_t h = 0; h < H; ++h)
            for (index_t k = 0; k < T; ++k)
              cells.out_row_of_slot.push_back((h * Rq + kv_of(b)[T - 1]) * R + kv_of(b)[k]);
        score_plans_.emplace_back(cells, 1);
      } else {
        ScatterPattern keys{count * H, T, H * R, {}}, queries{count * H, 1, H * R, {}};
        for (index_t b = first; b < first + count; ++b) {
          for (index_t h = 0; h < H; ++h) {
            for (index_t k = 0; k < T; ++k) keys.out_row_of_slot.push_back(h * R + kv_of(b)[k]);
            queries.out_row_of_slot.push_back(h * R + kv_of(b)[T - 1]);
          }
        }
        key_plans_.emplace_back(keys, dh);
        query_plans_.emplace_back(queries, dh);
      }
    }
    if (scores_ == ScorePath::table) {
      P::allocate(dscore_table_, static_cast<std::size_t>(H) * Rq * R);
      const Scalar one = 1;
      P::upload(one_, &one, 1);
    } else {
      P::allocate(q_, N * H * dh);
      P::allocate(dq_, N * H * dh);
    }
    // Table rows -> embeddings.
    token_plan_ = Plan(ScatterPattern{R, 1, V, space.row_token()}, D);
    position_plan_ = Plan(ScatterPattern{R, 1, T, space.row_position()}, D);

    const auto tile = static_cast<std::size_t>(tile_);
    const auto tiles = static_cast<index_t>(mix_plans_.size());
    // Tiles as tasks (Primitives::kTileTasks): each tile's scatters go into the tile's own partial
    // tables (touched rows only), which two more scatters then add up in tile order.
    tile_tasks_ = P::kTileTasks && tiles > 1 && path_ == LogitPath::logit_table && scores_ == ScorePath::table;
    workers_ = tile_tasks_ ? std::min<index_t>(P::max_workers(), tiles) : 1;
    if (tile_tasks_) {
      const index_t table_rows = scatter_rows_, cells = H * Rq * R;
      ScatterPattern logits{tiles * table_rows, 1, table_rows,
                            std::vector<index_t>(static_cast<std::size_t>(tiles) * table_rows, -1)};
      ScatterPattern scores{tiles * cells, 1, cells, std::vector<index_t>(static_cast<std::size_t>(tiles) * cells, -1)};
      for (index_t t = 0; t < tiles; ++t) {
        for (index_t r : mix_plans_[static_cast<std::size_t>(t)].touched_rows())
          logits.out_row_of_slot[static_cast<std::size_t>(t) * table_rows + r] = r;
        for (index_t c : score_plans_[static_cast<std::size_t>(t)].touched_rows())
          scores.out_row_of_slot[static_cast<std::size_t>(t) * cells + c] = c;
      }
      logit_sum_ = Plan(logits, Vp);
      score_sum_ = Plan(scores, 1);
      P::allocate(tile_dlogit_table_, static_cast<std::size_t>(tiles) * table_rows * Vp);
      P::allocate(tile_dscore_table_, static_cast<std::size_t>(tiles) * cells);
    }
    P::allocate(mix_w_, N * J);
    P::allocate(dscores_, N * H * T);
    if (path_ == LogitPath::logit_table)
      P::allocate(dlogits_, static_cast<std::size_t>(workers_) * tile * Vp);  // one tile per worker
    P::allocate(loss_, N);
    P::allocate(correct_, N);
    if (path_ == LogitPath::direct) {
      P::allocate(resid_, tile * D);
      P::allocate(dresid_, tile * D);
      head_.emplace(tile_);
    } else {
      P::allocate(dlogit_table_, static_cast<std::size_t>(H + 1) * R * Vp);
      if (rebased_) P::allocate(drebased_, static_cast<std::size_t>(scatter_rows_) * Vp);
    }
    P::allocate(dz_, static_cast<std::size_t>(H + 1) * R * D);
    if (input_table_) P::allocate(dinput_, static_cast<std::size_t>(H + 1) * R * Head::input_width);
    P::allocate(dqkv_, static_cast<std::size_t>(3) * H * R * dh);  // zero: score-table Q rows past Rq stay 0
  }

  // Writes d(mean loss)/d(parameters) into grads (Layout order) and returns the batch totals (with
  // `finite` telling whether every gradient is finite).
  // requires: tables and head_tables computed from params (with a logit table on the logit_table path),
  // same space.
  BatchTotals compute(const Scalar* params, const RowTables<Shape, Backend, Scalar>& tables,
                      const typename Head::Tables& head_tables, Scalar* grads) {
    require(tables.rows() == rows_, "BatchGradient: tables have ", tables.rows(), " rows, the plan expects ", rows_);
    require(tables.has_score_table() == (scores_ == ScorePath::table),
            "BatchGradient: the tables' score path does not match the plan's");
    auto in = plan_.inputs(tables);
    const index_t n = plan_.samples(), R = rows_;
    const Scalar grad_scale = Scalar(1) / static_cast<Scalar>(n);
    const kernels::SampleGradients<Shape, Scalar> s{P::data(mix_w_), P::data(q_), P::data(dscores_), P::data(dq_)};
    if constexpr (P::kAttendFirst) attend_first<Shape, Backend>(in, n, s.mix_w, s.q);
    if (tile_tasks_) {
      const index_t table_rows = scatter_rows_, cells = H * query_rows_ * R;
      P::for_each_task(static_cast<index_t>(mix_plans_.size()), workers_, [&](index_t t, index_t worker) {
        const index_t first = t * tile_, count = std::min(tile_, n - first);
        Scalar* dlogits = P::data(dlogits_) + static_cast<std::ptrdiff_t>(worker) * tile_ * Vp;
        P::for_each_team(count, kernels::offset_by(
                                    kernels::TrainSampleFromLogitTable<Shape, Scalar, RowOps>{
                                        in, tables.logit(), tables.rebased_logit(), grad_scale, s, dlogits,
                                        P::data(loss_), P::data(correct_), first},
                                    first));
        const auto ut = static_cast<std::size_t>(t);
        mix_plans_[ut].assign_touched(P::data(mix_w_) + static_cast<std::ptrdiff_t>(first) * J, dlogits, Vp,
                                      P::data(tile_dlogit_table_) + static_cast<std::ptrdiff_t>(t) * table_rows * Vp);
        score_plans_[ut].assign_touched(P::data(dscores_) + static_cast<std::ptrdiff_t>(first) * H * T, P::data(one_),
                                        0, P::data(tile_dscore_table_) + static_cast<std::ptrdiff_t>(t) * cells);
      });
      logit_sum_.apply(nullptr, P::data(tile_dlogit_table_), Vp, P::data(rebased_ ? drebased_ : dlogit_table_), false);
      score_sum_.apply(nullptr, P::data(tile_dscore_table_), 1, P::data(dscore_table_), false);
    }
    const std::size_t sequential_tiles = tile_tasks_ ? 0 : mix_plans_.size();
    for (std::size_t t = 0; t < sequential_tiles; ++t) {
      const index_t first = static_cast<index_t>(t) * tile_, count = std::min(tile_, n - first);
      const bool accumulate = t > 0;
      Scalar* mix_w = P::data(mix_w_) + static_cast<std::ptrdiff_t>(first) * J;
      if (path_ == LogitPath::logit_table) {
        P::for_each_team(count, kernels::offset_by(
                                    kernels::TrainSampleFromLogitTable<Shape, Scalar, RowOps>{
                                        in, tables.logit(), tables.rebased_logit(), grad_scale, s, P::data(dlogits_),
                                        P::data(loss_), P::data(correct_), first},
                                    first));
        mix_plans_[t].apply(mix_w, P::data(dlogits_), Vp, P::data(rebased_ ? drebased_ : dlogit_table_), accumulate);
      } else {
        P::for_each_team(
            count, kernels::offset_by(kernels::AttendAndMixRows<Shape, Scalar, RowOps>{in, tables.z(), s.mix_w, s.q,
                                                                                       P::data(resid_), first},
                                      first));
        kernels::SampleInputs<Shape, Scalar> weighted = in;  // the head reads the weights just stored
        weighted.weights = s.mix_w;
        head_->train(params, head_tables, weighted, P::data(resid_), count, in.targets, first, grad_scale,
                     P::data(loss_), P::data(correct_), P::data(dresid_), grads, accumulate);
        if constexpr (Head::input_width > 0) {
          if (input_table_) {  // d pre through the input table's rows too (model/table_heads.hpp)
            const Scalar* dinput = head_->input_gradient();
            P::for_each_team(count,
                             kernels::offset_by(
                                 kernels::AttendAndMixRowsBackwardWithInput<Shape, Scalar, Head::input_width, RowOps>{
                                     in, tables.z(), head_tables.input(), P::data(dresid_), dinput, s, first},
                                 first));
            input_plans_[t].apply(mix_w, dinput, Head::input_width, P::data(dinput_), accumulate);
          }
        }
        if (!input_table_)
          P::for_each_team(count, kernels::offset_by(
                                      kernels::AttendAndMixRowsBackward<Shape, Scalar, RowOps>{
                                          in, tables.z(), P::data(dresid_), s, first},
                                      first));
        mix_plans_[t].apply(mix_w, P::data(dresid_), D, P::data(dz_), accumulate);
      }
      Scalar* dscores = P::data(dscores_) + static_cast<std::ptrdiff_t>(first) * H * T;
      if (scores_ == ScorePath::table) {
        score_plans_[t].apply(dscores, P::data(one_), 0, P::data(dscore_table_), accumulate);
      } else {
        const std::ptrdiff_t block = static_cast<std::ptrdiff_t>(H) * R * dh,
                             rows = static_cast<std::ptrdiff_t>(first) * H * dh;
        query_plans_[t].apply(nullptr, P::data(dq_) + rows, dh, P::data(dqkv_), accumulate);       // dQ block
        key_plans_[t].apply(dscores, P::data(q_) + rows, dh, P::data(dqkv_) + block, accumulate);  // dK block
      }
    }
    Scalar* dqkv = P::data(dqkv_);
    if (rebased_) Ly::rebase_backward(P::data(drebased_), R, query_rows_, P::data(dlogit_table_));
    if (path_ == LogitPath::logit_table) {
      // Only the logit table's computed rows (tables.logit_rows(): base rows of query rows only) have
      // gradients; the x rows past them get their share from the projections alone.
      const index_t m = tables.logit_rows();
      Ly::unembedding_backward(params, tables.z(), P::data(dlogit_table_), m, grads, P::data(dz_));
      P::fill(P::data(dz_) + static_cast<std::ptrdiff_t>(m) * D, static_cast<std::size_t>((H + 1) * R - m) * D,
              Scalar(0));
    }
    if constexpr (Head::input_width > 0) {  // d W_in, and the input table rows' share of dz
      if (input_table_)
        head_->table_input_backward(params, head_tables, tables.z(), P::data(dinput_), grads, P::data(dz_));
    }
    if (scores_ == ScorePath::table)
      Ly::scores_backward(tables.qkv(), P::data(dscore_table_), R, query_rows_, dqkv);  // dQ, dK blocks
    Ly::output_backward(params, tables.qkv(), P::data(dz_), R, grads, dqkv);            // dW_O, dV block
    Scalar* dx = P::data(dz_) + static_cast<std::ptrdiff_t>(H) * R * D;  // already holds the x rows' share
    Ly::projection_backward(params, tables.x(), dqkv, R, grads, dx);
    Ly::embedding_backward(token_plan_, position_plan_, dx, grads);
    // One wait for the device: the batch totals and whether every gradient is finite.
    return P::sum_metrics(P::data(loss_), P::data(correct_), n, grads, Head::parameter_count);
  }

  index_t samples() const { return plan_.samples(); }
  LogitPath path() const { return path_; }
  ScorePath score_path() const { return scores_; }

 private:
  BatchPlan<Shape, Backend, Scalar> plan_;
  LogitPath path_;
  ScorePath scores_;
  index_t rows_, query_rows_;
  bool rebased_;             // the tables and the plan mix the rebased logit table (row_tables.hpp)
  index_t scatter_rows_;     // rows the logit gradient is scattered onto: the rebased table's or the logit table's
  index_t tile_ = 0;         // samples per tile
  bool tile_tasks_ = false;  // tiles run as tasks (Primitives::kTileTasks), into per-tile partial tables
  index_t workers_ = 1;      // tiles in flight at once: dlogits_ holds one tile per worker
  bool input_table_;         // the head's input table (the MLP's input) is mixed, and its gradient scattered
  std::vector<Plan> mix_plans_, key_plans_, query_plans_, score_plans_;  // one per tile
  std::vector<Plan> input_plans_;  // one per tile, input table only: as mix_plans_, Head::input_width wide
  Plan token_plan_, position_plan_;
  Plan logit_sum_, score_sum_;             // tile tasks: partial tables -> tables, in tile order
  buffer<Scalar> mix_w_, dscores_, loss_;  // per sample
  buffer<Scalar> q_, dq_;                  // per sample, per-sample scores only
  buffer<Scalar> dlogits_;                 // per sample of a tile
  buffer<Scalar> resid_, dresid_;          // per sample of a tile, direct path only
  std::optional<Head> head_;               // direct path only
  buffer<index_t> correct_;
  buffer<Scalar> dlogit_table_, dz_, dqkv_;               // per row
  buffer<Scalar> dinput_;                                 // per row of z, input table only
  buffer<Scalar> drebased_;                               // per rebased row, rebased tables only
  buffer<Scalar> tile_dlogit_table_, tile_dscore_table_;  // per tile and row, tile tasks only
  buffer<Scalar> dscore_table_, one_;                     // score table path only
};

}  // namespace tinyattn
