// examples/minmax/snapshots.hpp — `minmax train --snapshot-every K`: attention as it forms.
//
//   attention_evolution.npy  uint8 (frames, op, heads, keys A/op/B, a, b): the '=' query's attention
//                            weight * 255 at each snapshot (frame f is epoch epochs[f] of progress.csv)
//   progress.csv             per snapshot: each head's attention entropy at '=', each tensor's norm, loss
//                            and accuracy on max and on min
//   attention_evolution.gif  the notebook's grid (max and min, one row per head, keys A, op, B) per frame
//   progress.png             entropies and max/min accuracies over epochs; progress_norms.png the norms
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "run_files.hpp"  // examples/common
#include "tinyattn/inspect/training_snapshots.hpp"
#include "tinyattn/io/npy.hpp"
#include "tinyattn/plot/heatmap_animation.hpp"
#include "tinyattn/plot/line_chart.hpp"

namespace minmax {

template <class Net>
class MinMaxSnapshots {
 public:
  MinMaxSnapshots(const tinyattn::MinMaxTask& task, std::int64_t every)
      : task_(task), every_(every), snapshots_(task.all(), {{"max", op_batch(task, 0)}, {"min", op_batch(task, 1)}}) {}

  // Room for the snapshots of a run over epochs [first, last]: at its start and at every multiple of K.
  void reserve(std::int64_t first, std::int64_t last) {
    if (every_ > 0 && last >= first - 1)
      snapshots_.reserve(static_cast<tinyattn::index_t>(1 + last / every_ - (first - 1) / every_));
  }

  // Takes a snapshot at epoch 0 of this run's start and at every multiple of K.
  void maybe_take(const Net& net, std::int64_t epoch, bool force = false) {
    if (every_ <= 0 || (!force && epoch % every_ != 0)) return;
    const auto start = std::chrono::steady_clock::now();
    snapshots_.take(net, epoch);
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  double seconds() const { return seconds_; }
  tinyattn::index_t frames() const { return snapshots_.frame_count(); }

  // Writes the arrays and the CSV; the figures when `plot` (false when gnuplot is missing).
  bool write(const std::string& dir, bool plot, std::vector<std::string>& files) const {
    using tinyattn::index_t;
    constexpr index_t H = Net::heads, T = Net::context;
    const index_t n = task_.max_n(), F = snapshots_.frame_count(), N = task_.size();
    if (F == 0) return true;
    // (frames, N, 1 layer, H, T) -> (frames, op, H, key, a, b)
    const auto& in = snapshots_.frames();
    std::vector<std::uint8_t> out(static_cast<std::size_t>(F) * 2 * H * 3 * n * n);
    for (index_t f = 0; f < F; ++f)
      for (index_t i = 0; i < N; ++i) {
        const tinyattn::MinMaxSample s = task_.sample(i);
        for (index_t h = 0; h < H; ++h)
          for (index_t k = 0; k < 3; ++k)
            out[((((static_cast<std::size_t>(f) * 2 + static_cast<std::size_t>(s.op)) * H + h) * 3 + k) * n + s.a) * n + s.b] =
                in[((static_cast<std::size_t>(f) * N + i) * H + h) * T + k];
      }
    tinyattn::io::write_npy(programs::join(dir, "attention_evolution.npy"), out, {F, 2, H, 3, n, n});
    files.push_back("attention_evolution.npy");

    const auto& measures = snapshots_.measures();
    std::string csv = "epoch";
    for (index_t h = 0; h < H; ++h) csv += ",entropy_head" + std::to_string(h);
    for (const auto& [name, norm] : measures[0].tensor_norms) csv += ",norm_" + name;
    csv += ",loss_max,loss_min,accuracy_max,accuracy_min\n";
    for (const auto& m : measures) {
      csv += std::to_string(m.epoch);
      for (double e : m.head_entropy) csv += "," + number(e);
      for (const auto& [name, norm] : m.tensor_norms) csv += "," + number(norm);
      csv += "," + number(m.subset_loss[0].second) + "," + number(m.subset_loss[1].second) + "," +
             number(m.subset_accuracy[0].second) + "," + number(m.subset_accuracy[1].second) + "\n";
    }
    tinyattn::io::write_file_atomically(programs::join(dir, "progress.csv"), csv);
    files.push_back("progress.csv");
    if (!plot) return true;
    if (!tinyattn::plot::gnuplot_available()) return false;

    tinyattn::plot::HeatmapAnimation a;
    a.title = "attention from '=' at epoch %d (rows: max then min, one per head; columns: A, op, B)";
    a.rows = 2 * H, a.cols = 3, a.ny = n, a.nx = n;
    a.cell_px = 130;
    for (const auto& m : measures) a.labels.push_back(m.epoch);
    a.values = out;  // (F, op, H, key, a, b) = (F, rows, cols, ny, nx)
    for (const char* op : {"max", "min"})
      for (index_t h = 0; h < H; ++h)
        for (const char* key : {"A", "op", "B"}) a.cell_titles.push_back(std::string(op) + " head " + std::to_string(h) + " -> " + key);
    tinyattn::plot::write_heatmap_animation_gif(a, programs::join(dir, "attention_evolution.gif"));
    files.push_back("attention_evolution.gif");

    tinyattn::plot::LineChart chart;
    chart.title = "attention entropy at '=' per head (nats; ln 4 = uniform) and accuracy on max and min";
    chart.x_label = "epoch";
    chart.y_label = "entropy / accuracy";
    std::vector<double> epochs;
    for (const auto& m : measures) epochs.push_back(static_cast<double>(m.epoch));
    for (index_t h = 0; h < H; ++h) {
      tinyattn::plot::LineSeries s{"entropy head " + std::to_string(h), epochs, {}};
      for (const auto& m : measures) s.y.push_back(m.head_entropy[static_cast<std::size_t>(h)]);
      chart.series.push_back(s);
    }
    for (int op = 0; op < 2; ++op) {
      tinyattn::plot::LineSeries s{std::string("accuracy on ") + (op ? "min" : "max"), epochs, {}};
      for (const auto& m : measures) s.y.push_back(m.subset_accuracy[static_cast<std::size_t>(op)].second);
      chart.series.push_back(s);
    }
    tinyattn::plot::write_line_chart_png(chart, programs::join(dir, "progress.png"));
    files.push_back("progress.png");

    tinyattn::plot::LineChart norms;
    norms.title = "parameter norms (Frobenius)";
    norms.x_label = "epoch";
    norms.y_label = "norm";
    for (std::size_t t = 0; t < measures[0].tensor_norms.size(); ++t) {
      const double first = measures[0].tensor_norms[t].second;
      if (first == 0 && measures.back().tensor_norms[t].second == 0) continue;  // the frozen zero biases
      tinyattn::plot::LineSeries s{measures[0].tensor_norms[t].first, epochs, {}};
      for (const auto& m : measures) s.y.push_back(m.tensor_norms[t].second);
      norms.series.push_back(s);
    }
    tinyattn::plot::write_line_chart_png(norms, programs::join(dir, "progress_norms.png"));
    files.push_back("progress_norms.png");
    return true;
  }

 private:
  static tinyattn::TokenBatch op_batch(const tinyattn::MinMaxTask& task, int op) {
    const tinyattn::index_t per_op = task.max_n() * task.max_n();
    std::vector<tinyattn::index_t> indices(static_cast<std::size_t>(per_op));
    for (tinyattn::index_t i = 0; i < per_op; ++i) indices[static_cast<std::size_t>(i)] = op * per_op + i;
    return task.batch(indices);
  }
  static std::string number(double value) { return programs::number_text(value, "%.6g"); }

  const tinyattn::MinMaxTask& task_;
  std::int64_t every_;
  tinyattn::TrainingSnapshots<Net> snapshots_;
  double seconds_ = 0;
};

}  // namespace minmax
