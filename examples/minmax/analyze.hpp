// examples/minmax/analyze.hpp — `minmax analyze --weights FILE [--out DIR]`: what a trained min/max model
// does and where it fails, as figures, arrays and a report.md that states the numbers in words.
//
//   qk_circuit.png/.npy     per head, the score of the '=' query against every key token at A, op, B
//   ov_circuit.png/.npy     per head, how attending to a key token (at A, op, B) moves every output logit
//   attribution.png/.npy    per head (and the direct path), its share of the correct logit over (a, b)
//   margins.png/.npy        correct logit minus the best other over (a, b), max and min; wrong cells marked
//   failures.csv            every wrong input with the attention each head paid to A, op and B
//   ablation.csv            accuracy on max and on min with heads zero- or mean-ablated
//   report.md               all of it in words, linking every figure
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "run_files.hpp"  // examples/common
#include "tinyattn/inspect/attribution.hpp"
#include "tinyattn/inspect/circuits.hpp"
#include "tinyattn/inspect/minmax_analysis.hpp"
#include "tinyattn/io/npy.hpp"
#include "tinyattn/io/weights.hpp"
#include "tinyattn/plot/heatmap_grid.hpp"

namespace minmax {

inline std::string short_number(double value) { return programs::number_text(value, "%.6g"); }

template <class Net>
int analyze_model(const Net& net, const tinyattn::MinMaxTask& task, const std::string& weights,
                  const std::string& dir) {
  namespace plt = tinyattn::plot;
  using tinyattn::index_t;
  const auto start = std::chrono::steady_clock::now();
  programs::prepare_output_directory(dir);
  constexpr index_t H = Net::heads, V = Net::vocab, T = Net::context;
  const index_t n = task.max_n();
  std::vector<std::string> files;
  const auto npy = [&](const std::string& name, const std::vector<float>& values, std::vector<std::int64_t> shape) {
    tinyattn::io::write_npy(programs::join(dir, name), values, shape);
    files.push_back(name);
  };

  // Circuits, from the fast path's tables. QK: the '=' query (position 3) against key tokens at A, op, B.
  const auto c = tinyattn::circuits(net);
  std::vector<float> qk(static_cast<std::size_t>(H) * 3 * V), ov(static_cast<std::size_t>(H) * 3 * V * Net::vocab_out);
  const index_t query_row = c.row(task.token_equals(), T - 1);
  for (index_t h = 0; h < H; ++h)
    for (index_t k = 0; k < 3; ++k)
      for (index_t v = 0; v < V; ++v) {
        qk[(static_cast<std::size_t>(h) * 3 + k) * V + v] = static_cast<float>(c.qk_at(h, query_row, c.row(v, k)));
        std::copy_n(
            c.ov_row(h, c.row(v, k)), Net::vocab_out,
            ov.begin() + static_cast<std::ptrdiff_t>(((static_cast<std::size_t>(h) * 3 + k) * V + v) * Net::vocab_out));
      }
  npy("qk_circuit.npy", qk, {H, 3, V});
  npy("ov_circuit.npy", ov, {H, 3, V, Net::vocab_out});

  // Attribution of the correct logit, per component, over (a, b) for max and min.
  const tinyattn::TokenBatch all = task.all();
  const auto dla = tinyattn::direct_logit_attribution(net, all, /*target_only=*/true);
  const index_t parts = static_cast<index_t>(dla.components.size()) - 1;  // without the constant bias
  std::vector<float> attribution(static_cast<std::size_t>(parts) * 2 * n * n);
  for (index_t i = 0; i < task.size(); ++i) {
    const tinyattn::MinMaxSample s = task.sample(i);
    for (index_t k = 0; k < parts; ++k)
      attribution[((static_cast<std::size_t>(k) * 2 + static_cast<std::size_t>(s.op)) * n + s.a) * n + s.b] =
          static_cast<float>(dla.of(static_cast<std::size_t>(k), i)[0]);
  }
  npy("attribution.npy", attribution, {parts, 2, n, n});

  // The failure atlas and what each head does.
  const tinyattn::MinMaxAtlas atlas = tinyattn::minmax_failure_atlas(net, task);
  std::vector<float> margins;
  for (int op = 0; op < 2; ++op) margins.insert(margins.end(), atlas.margin[op].begin(), atlas.margin[op].end());
  npy("margins.npy", margins, {2, n, n});
  std::string csv = "op,a,b,answer,expected,margin";
  for (index_t h = 0; h < H; ++h)
    for (const char* key : {"A", "op", "B"}) csv += ",head" + std::to_string(h) + "_" + key;
  csv += "\n";
  for (const auto& f : atlas.failures) {
    char line[96];
    std::snprintf(line, sizeof line, "%s,%d,%d,%d,%d,%.6g", f.op == tinyattn::MinMaxOp::max ? "max" : "min", f.a, f.b,
                  f.answer, f.expected, f.margin);
    csv += line;
    for (float w : f.attention) csv += "," + short_number(w);
    csv += "\n";
  }
  tinyattn::io::write_file_atomically(programs::join(dir, "failures.csv"), csv);
  files.push_back("failures.csv");
  const auto roles = tinyattn::minmax_head_roles(atlas);
  const auto ablation = tinyattn::minmax_ablation_table(net, task);
  std::string ablation_csv = "ablated,max_accuracy,min_accuracy\n";
  for (const auto& row : ablation)
    ablation_csv += row.what + "," + short_number(row.accuracy[0]) + "," + short_number(row.accuracy[1]) + "\n";
  tinyattn::io::write_file_atomically(programs::join(dir, "ablation.csv"), ablation_csv);
  files.push_back("ablation.csv");

  // Figures (when gnuplot is there).
  const bool gnuplot = plt::gnuplot_available();
  if (gnuplot) {
    plt::PlotStyle style;
    style.cell_px = 190;
    plt::HeatmapGrid q;
    q.title = "QK circuit: score of the '=' query against each key token (unscaled)";
    q.rows = H, q.cols = 3, q.ny = 1, q.nx = V;
    // one row of V per cell is too thin to see: repeat it vertically
    q.ny = 16;
    q.values.resize(static_cast<std::size_t>(H) * 3 * 16 * V);
    for (index_t cell = 0; cell < H * 3; ++cell)
      for (index_t y = 0; y < 16; ++y)
        std::copy_n(qk.data() + static_cast<std::size_t>(cell) * V, V,
                    q.values.data() + (static_cast<std::size_t>(cell) * 16 + y) * V);
    for (index_t h = 0; h < H; ++h) q.row_labels.push_back("head " + std::to_string(h));
    q.col_labels = {"key at A", "key at op", "key at B"};
    q.x_label = "key token", q.y_label = "";
    q.range = plt::HeatmapGrid::Range::symmetric_fit;
    q.colorbar_label = "q . k";
    plt::write_heatmap_grid_png(q, programs::join(dir, "qk_circuit.png"), style);
    files.push_back("qk_circuit.png");

    plt::HeatmapGrid o;
    o.title = "OV circuit: how attending to a key token moves each output logit";
    o.rows = H, o.cols = 3, o.ny = V, o.nx = Net::vocab_out;
    o.values = ov;
    o.row_labels = q.row_labels;
    o.col_labels = q.col_labels;
    o.x_label = "output logit", o.y_label = "key token";
    o.range = plt::HeatmapGrid::Range::symmetric_fit;
    o.colorbar_label = "logit change";
    plt::write_heatmap_grid_png(o, programs::join(dir, "ov_circuit.png"), style);
    files.push_back("ov_circuit.png");

    plt::HeatmapGrid a;
    a.title = "direct logit attribution to the correct answer, over (a, b)";
    a.rows = parts, a.cols = 2, a.ny = n, a.nx = n;
    a.values = attribution;
    for (index_t k = 0; k < parts; ++k) a.row_labels.push_back(dla.components[static_cast<std::size_t>(k)]);
    a.col_labels = {"max", "min"};
    a.range = plt::HeatmapGrid::Range::symmetric_fit;
    a.colorbar_label = "contribution to the correct logit";
    plt::write_heatmap_grid_png(a, programs::join(dir, "attribution.png"), style);
    files.push_back("attribution.png");

    plt::HeatmapGrid m;
    m.title = "margin of the correct answer (correct logit - best other); wrong where <= 0";
    m.rows = 2, m.cols = 2, m.ny = n, m.nx = n;
    m.values.resize(static_cast<std::size_t>(4) * n * n);
    for (int op = 0; op < 2; ++op)
      for (std::size_t i = 0; i < static_cast<std::size_t>(n) * n; ++i) {
        m.values[static_cast<std::size_t>(op) * 2 * n * n + i] = atlas.margin[op][i];
        m.values[(static_cast<std::size_t>(op) * 2 + 1) * n * n + i] = atlas.margin[op][i] <= 0 ? 1.0f : 0.0f;
      }
    m.row_labels = {"max", "min"};
    m.col_labels = {"margin", "wrong (1)"};
    m.range = plt::HeatmapGrid::Range::symmetric_fit;
    plt::write_heatmap_grid_png(m, programs::join(dir, "margins.png"), style);
    files.push_back("margins.png");
  }

  // The report.
  std::string r = "# What the min/max model does\n\nWeights: `" + weights + "`; all " + std::to_string(task.size()) +
                  " inputs (operands 0.." + std::to_string(n - 1) + ", max and min).\n\n";
  char line[512];
  std::snprintf(
      line, sizeof line,
      "The model answers %.2f %% of the max inputs and %.2f %% of the min inputs right (%zu wrong of %d).\n\n",
      100 * ablation[0].accuracy[0], 100 * ablation[0].accuracy[1], atlas.failures.size(), task.size());
  r += line;
  r += "## The heads\n\n";
  for (const auto& role : roles) {
    std::snprintf(
        line, sizeof line,
        "- Head %d attends more to the operand that is the answer than to the other one on %.1f %% of max "
        "inputs and %.1f %% of min inputs (a != b); its mean weight on the op token is %.2f (max) and %.2f (min).\n",
        role.head, 100 * role.answer_operand[0], 100 * role.answer_operand[1], role.op_token[0], role.op_token[1]);
    r += line;
  }
  r +=
      "\n![QK circuit](qk_circuit.png)\n\n*QK circuit*: the unscaled score of the `=` query against each key token at "
      "positions A, op and B (the pattern of an input is the softmax of its three scores and `=`'s own). A head that "
      "finds the larger operand has scores that grow with the token at A and at B.\n\n"
      "![OV circuit](ov_circuit.png)\n\n*OV circuit*: how attending to a key token with weight 1 moves every output "
      "logit. A copying head has a bright diagonal: attending to token t raises logit t.\n\n"
      "![attribution](attribution.png)\n\n*Direct logit attribution*: each head's (and the embeddings') contribution to the "
      "correct answer's logit over all (a, b); the shares and a constant add up to the logit.\n\n";
  r += "## Ablations\n\n| ablated | max accuracy | min accuracy |\n| --- | --- | --- |\n";
  for (const auto& row : ablation) {
    std::snprintf(line, sizeof line, "| %s | %.2f %% | %.2f %% |\n", row.what.c_str(), 100 * row.accuracy[0],
                  100 * row.accuracy[1]);
    r += line;
  }
  r +=
      "\nZero ablation sets a head's `hook_z` to 0 (its output term disappears); mean ablation replaces it by its mean "
      "over all inputs at each position ([ablation.csv](ablation.csv)).\n\n## Failures\n\n";
  std::snprintf(
      line, sizeof line,
      "%d max inputs and %d min inputs are wrong; every one is listed in [failures.csv](failures.csv) with the "
      "attention each head paid to A, op and B.\n\n![margins](margins.png)\n\n*Margins*: the correct logit "
      "minus the best other over (a, b) (y = a, x = b); the right column marks the wrong cells.\n",
      atlas.wrong(tinyattn::MinMaxOp::max), atlas.wrong(tinyattn::MinMaxOp::min));
  r += line;
  if (!gnuplot) r += "\n(gnuplot was not found: the figures are missing; every .npy and .csv file was written.)\n";
  tinyattn::io::write_file_atomically(programs::join(dir, "report.md"), r);
  files.push_back("report.md");
  if (!gnuplot) programs::warn_no_gnuplot();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("analysis in %.2f s; files in %s/:", seconds, dir.c_str());
  for (const auto& f : files) std::printf(" %s", f.c_str());
  std::printf("\n");
  return 0;
}

}  // namespace minmax
