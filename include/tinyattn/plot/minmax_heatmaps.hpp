// tinyattn/plot/minmax_heatmaps.hpp — the min/max experiment's attention pictures as heatmap grids
// (the original notebook's figures): one row per head, one column per key (A, op, B) of the '='
// query, n x n images with y = a and x = b.
#pragma once

#include <cmath>
#include <string>

#include "tinyattn/plot/heatmap_grid.hpp"

namespace tinyattn::plot {

// Grids for the notebook's pictures: one row per head, one column per key (A, op, B), n x n
// images (y = a, x = b). Values are zero; fill them with grid.at(head, key, a, b).
//   weights: softmax pattern, colour range [0, 1].
//   scores:  pre-softmax scores; colour range [-limit, limit], or fitted to the data when limit == 0.
inline HeatmapGrid attention_weights_grid(const std::string& op_name, int heads, int n) {
  require(heads >= 1 && n >= 1, "tinyattn::plot: attention_weights_grid(", op_name, ") got heads = ", heads,
          ", n = ", n, "; expected both >= 1");
  HeatmapGrid grid;
  grid.title = op_name + " \u2014 attention weights from '='";
  grid.rows = heads;
  grid.cols = 3;
  grid.ny = n;
  grid.nx = n;
  grid.values.assign(static_cast<std::size_t>(heads) * 3 * static_cast<std::size_t>(n) * static_cast<std::size_t>(n),
                     0.0f);
  for (int h = 0; h < heads; ++h) grid.row_labels.push_back(op_name + " \u2014 head " + std::to_string(h));
  grid.col_labels = {"A", "op", "B"};
  grid.range = HeatmapGrid::Range::fixed;
  grid.zmin = 0.0f;
  grid.zmax = 1.0f;
  grid.colorbar_label = "attention weight";
  return grid;
}

inline HeatmapGrid attention_scores_grid(const std::string& op_name, int heads, int n, float limit = 0.0f) {
  require(std::isfinite(limit) && limit >= 0.0f, "tinyattn::plot: attention_scores_grid(", op_name,
          ") got limit = ", limit, "; expected a finite limit > 0, or 0 to fit the data");
  HeatmapGrid grid = attention_weights_grid(op_name, heads, n);
  grid.title = op_name + " \u2014 attention scores (pre-softmax) from '='";
  if (limit > 0.0f) {
    grid.range = HeatmapGrid::Range::fixed;
    grid.zmin = -limit;
    grid.zmax = limit;
  } else {
    grid.range = HeatmapGrid::Range::symmetric_fit;
  }
  grid.colorbar_label = "attention score";
  return grid;
}

}  // namespace tinyattn::plot
