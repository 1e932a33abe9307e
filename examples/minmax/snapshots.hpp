// examples/minmax/snapshots.hpp — `minmax train --snapshot-every K`: attention as it forms.
//
//   attention_evolution.npy  uint8 (frames, op, heads, keys A/op/B, a, b): the '=' query's attention
//                            weight * 255 at each snapshot (frame f is epoch epochs[f] of progress.csv)
//   progress.csv             per snapshot: each head's attention entropy at '=', each tensor's norm, loss
//                            and accuracy on the test split's max inputs and on its min inputs (those the
//                            model never trains on, where the two operations part ways)
//   attention_evolution.gif  the notebook's grid (max and min, one row per head, keys A, op, B) per frame
//   progress.png             entropies and max/min test accuracies over epochs; progress_norms.png the norms
#pragma once

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
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
      : task_(task), every_(every), snapshots_(task.all(), test_subsets(task)) {}

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
            out[((((static_cast<std::size_t>(f) * 2 + static_cast<std::size_t>(s.op)) * H + h) * 3 + k) * n + s.a) * n +
                s.b] = in[((static_cast<std::size_t>(f) * N + i) * H + h) * T + k];
      }
    tinyattn::io::write_npy(programs::join(dir, "attention_evolution.npy"), out, {F, 2, H, 3, n, n});
    files.push_back("attention_evolution.npy");

    const auto& measures = snapshots_.measures();
    std::string csv = "epoch";
    for (index_t h = 0; h < H; ++h) csv += ",entropy_head" + std::to_string(h);
    for (const auto& [name, norm] : measures[0].tensor_norms) csv += ",norm_" + name;
    csv += ",test_loss_max,test_loss_min,test_accuracy_max,test_accuracy_min\n";
    for (const auto& m : measures) {
      csv += std::to_string(m.epoch);
      for (double e : m.head_entropy) csv += "," + number(e);
      for (const auto& [name, norm] : m.tensor_norms) csv += "," + number(norm);
      csv += "," + number(of(m.subset_loss, "max")) + "," + number(of(m.subset_loss, "min")) + "," +
             number(of(m.subset_accuracy, "max")) + "," + number(of(m.subset_accuracy, "min")) + "\n";
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
        for (const char* key : {"A", "op", "B"})
          a.cell_titles.push_back(std::string(op) + " head " + std::to_string(h) + " -> " + key);
    tinyattn::plot::write_heatmap_animation_gif(a, programs::join(dir, "attention_evolution.gif"));
    files.push_back("attention_evolution.gif");

    tinyattn::plot::LineChart chart;
    chart.title = "attention entropy at '=' per head (nats; ln 4 = uniform) and test accuracy on max and min";
    chart.x_label = "epoch";
    chart.y_label = "entropy / accuracy";
    std::vector<double> epochs;
    for (const auto& m : measures) epochs.push_back(static_cast<double>(m.epoch));
    for (index_t h = 0; h < H; ++h) {
      tinyattn::plot::LineSeries s{"entropy head " + std::to_string(h), epochs, {}};
      for (const auto& m : measures) s.y.push_back(m.head_entropy[static_cast<std::size_t>(h)]);
      chart.series.push_back(s);
    }
    for (const char* op : {"max", "min"}) {
      tinyattn::plot::LineSeries s{std::string("test accuracy on ") + op, epochs, {}};
      for (const auto& m : measures) s.y.push_back(of(m.subset_accuracy, op));
      if (!std::isnan(s.y[0])) chart.series.push_back(s);  // a test split without inputs of op: no line
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
  // The test split's max inputs ("max") and min inputs ("min"), each where it has any.
  static std::vector<std::pair<std::string, tinyattn::TokenBatch>> test_subsets(const tinyattn::MinMaxTask& task) {
    std::vector<std::pair<std::string, tinyattn::TokenBatch>> subsets;
    for (const tinyattn::MinMaxOp op : {tinyattn::MinMaxOp::max, tinyattn::MinMaxOp::min}) {
      std::vector<tinyattn::index_t> indices;
      for (const tinyattn::index_t i : task.test_indices())
        if (task.sample(i).op == op) indices.push_back(i);
      if (!indices.empty()) subsets.emplace_back(op == tinyattn::MinMaxOp::max ? "max" : "min", task.batch(indices));
    }
    return subsets;
  }
  // The measure of the subset `name`; NaN for a subset that was not measured.
  static double of(const std::vector<std::pair<std::string, double>>& measures, const std::string& name) {
    for (const auto& [subset, value] : measures)
      if (subset == name) return value;
    return std::numeric_limits<double>::quiet_NaN();
  }
  static std::string number(double value) { return programs::number_text(value, "%.6g"); }

  const tinyattn::MinMaxTask& task_;
  std::int64_t every_;
  tinyattn::TrainingSnapshots<Net> snapshots_;
  double seconds_ = 0;
};

}  // namespace minmax
