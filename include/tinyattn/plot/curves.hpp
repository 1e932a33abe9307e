// tinyattn/plot/curves.hpp — training curves (accuracy in %, loss on a log scale, train and test)
// as a PNG drawn by gnuplot, or as a self-contained script.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tinyattn/plot/gnuplot_runner.hpp"

namespace tinyattn::plot {

// Training curves. Accuracies are fractions in [0, 1] (drawn in %); losses are drawn on a log
// scale. Each series is either empty (not drawn) or has one entry per epoch; a NaN entry means
// "not measured at this epoch" and is left out, as are zero losses (not drawable on a log axis).
struct Curves {
  std::string title;  // figure title; empty: none
  std::vector<int> epoch;
  std::vector<double> train_acc, test_acc, train_loss, test_loss;
};

inline void validate(const Curves& curves) {
  require(!curves.epoch.empty(), "tinyattn::plot: curves '", curves.title, "' have no epochs; expected at least one");
  const std::pair<const char*, const std::vector<double>*> series[] = {{"train_acc", &curves.train_acc},
                                                                       {"test_acc", &curves.test_acc},
                                                                       {"train_loss", &curves.train_loss},
                                                                       {"test_loss", &curves.test_loss}};
  bool any = false;
  for (const auto& [name, values] : series) {
    if (values->empty()) continue;
    any = true;
    require(values->size() == curves.epoch.size(), "tinyattn::plot: curves '", curves.title, "' series ", name, " has ",
            values->size(), " values; expected 0 or one per epoch (", curves.epoch.size(), ")");
    const bool accuracy = std::strstr(name, "acc") != nullptr;
    for (std::size_t i = 0; i < values->size(); ++i) {
      const double v = (*values)[i];
      const bool ok = std::isnan(v) || (accuracy ? (v >= 0.0 && v <= 1.0) : (std::isfinite(v) && v >= 0.0));
      require(ok, "tinyattn::plot: curves '", curves.title, "' ", name, "[", i, "] (epoch ", curves.epoch[i], ") is ",
              v, "; expected ", accuracy ? "a fraction in [0, 1]" : "a finite loss >= 0", " or NaN (missing)");
    }
  }
  require(any, "tinyattn::plot: curves '", curves.title, "' have no series; expected at least one of train_acc, ",
          "test_acc, train_loss, test_loss");
}

// Size of the curves PNG: one panel for accuracies and one for losses, side by side (a panel whose
// two series are both empty is left out).
inline PngSize curves_figure_size(const Curves& curves, const PlotStyle& style = {}) {
  require(style.curves_panel_width_px >= 100 && style.curves_panel_width_px <= 8000 && style.curves_height_px >= 100 &&
              style.curves_height_px <= 8000,
          "tinyattn::plot: PlotStyle curves panel is ", style.curves_panel_width_px, "x", style.curves_height_px,
          " px; expected 100..8000 each");
  const bool accuracy_panel = !curves.train_acc.empty() || !curves.test_acc.empty();
  const bool loss_panel = !curves.train_loss.empty() || !curves.test_loss.empty();
  const int panels = (accuracy_panel ? 1 : 0) + (loss_panel ? 1 : 0);
  return PngSize{std::max(1, panels) * style.curves_panel_width_px, style.curves_height_px};
}

namespace detail {

// One curve as (epoch, value) points: accuracies in %, missing (NaN) points and, on the log-scale
// loss axis, non-positive losses left out, so that the line stays connected.
using CurvePoints = std::vector<std::pair<int, double>>;

// Writes the curves script to `s`. With inline_data false the points are datablocks ($train_acc,
// ...) at the top, so the text alone reruns with `gnuplot <file>`; with inline_data true each plot
// command reads its curves from '-' and `send_points(points)` is called after the command, once
// per '-' in order, to send them (gnuplot-iostream's send1d). requires: validate(curves) passes.
template <class SendPoints>
void emit_curves_script(std::ostream& s, const Curves& curves, const std::string& png_path, const PlotStyle& style,
                        bool inline_data, SendPoints&& send_points) {
  const PngSize size = curves_figure_size(curves, style);

  struct Series {
    const char* block;
    const char* label;
    const char* color;
    const std::vector<double>* values;
    double scale;
    bool log_axis;
  };
  // Train blue, test orange, as in the notebook's matplotlib defaults.
  const Series all[] = {{"$train_acc", "train", "#1f77b4", &curves.train_acc, 100.0, false},
                        {"$test_acc", "test", "#ff7f0e", &curves.test_acc, 100.0, false},
                        {"$train_loss", "train", "#1f77b4", &curves.train_loss, 1.0, true},
                        {"$test_loss", "test", "#ff7f0e", &curves.test_loss, 1.0, true}};
  CurvePoints points[4];
  for (int k = 0; k < 4; ++k) {
    const Series& series = all[k];
    for (std::size_t i = 0; i < series.values->size(); ++i) {
      const double v = (*series.values)[i];
      if (std::isnan(v) || (series.log_axis && v <= 0.0)) continue;
      points[k].emplace_back(curves.epoch[i], v * series.scale);
    }
  }

  s << "# tinyattn training curves: " << gnuplot_quote(curves.title) << "\n"
    << (inline_data ? "# The points follow each plot command as inline data ('-').\n"
                    : "# Rerun with: gnuplot <this file>\n")
    << "set encoding utf8\n"
    << "set terminal pngcairo size " << size.width << "," << size.height << " enhanced font "
    << gnuplot_quote(style.font) << " background '#ffffff'\n"
    << "set output " << gnuplot_quote(png_path) << "\n";
  if (!inline_data) {
    for (int k = 0; k < 4; ++k) {
      if (all[k].values->empty()) continue;
      s << all[k].block << " << EOD\n";
      for (const auto& [epoch, value] : points[k]) s << epoch << " " << number(value) << "\n";
      s << "EOD\n";
    }
  }
  const bool accuracy_panel = !curves.train_acc.empty() || !curves.test_acc.empty();
  const bool loss_panel = !curves.train_loss.empty() || !curves.test_loss.empty();
  const auto [first_epoch, last_epoch] = std::minmax_element(curves.epoch.begin(), curves.epoch.end());
  s << "set multiplot layout 1," << ((accuracy_panel && loss_panel) ? 2 : 1) << " title " << gnuplot_quote(curves.title)
    << " noenhanced font ',13'\n"
    << "set xlabel 'epoch'\nset grid lc rgb '#dddddd'\nset border lc rgb '#444444'\nset key box opaque\n";
  if (*first_epoch < *last_epoch) {
    s << "set xrange [" << *first_epoch << ":" << *last_epoch << "]\n";
  } else {  // one epoch: a small range around it instead of gnuplot's "empty x range" warning
    s << "set xrange [" << *first_epoch - 1 << ":" << *last_epoch + 1 << "]\n";
  }
  auto plot_panel = [&](int first, int second) {
    std::string sep = "plot ";
    std::vector<int> sent;  // series read from '-', in the order of the plot command
    for (int k : {first, second}) {
      if (all[k].values->empty()) continue;
      // A series with nothing drawable is listed with an unreachable point so the key still
      // shows it and gnuplot has no empty data set to complain about.
      const bool no_points = points[k].empty();
      const bool dots = points[k].size() < 2;
      std::string source = "'+' using (NaN):(NaN)";
      if (!no_points) {
        source = std::string(inline_data ? "'-'" : all[k].block) + " using 1:2";
        sent.push_back(k);
      }
      s << sep << source << " with " << (dots ? "points pt 7 ps 0.8" : "lines lw 2") << " lc rgb '" << all[k].color
        << "' title '" << all[k].label << "'";
      sep = ", \\\n     ";
    }
    if (sep == "plot ") return;  // both series empty: no plot command
    s << "\n";
    if (inline_data) {
      for (int k : sent) send_points(points[k]);
    }
  };
  if (accuracy_panel) {
    s << "set title 'accuracy'\nset ylabel 'accuracy (%)'\nset yrange [0:102]\nset ytics 0,20,100\n"
      << "set key bottom right\n";
    plot_panel(0, 1);
  }
  if (loss_panel) {
    s << "set title 'loss'\nset ylabel 'loss (log scale)'\nset logscale y\nset autoscale y\nset ytics auto\n"
      << "set format y '10^{%L}'\nset key top right\n";
    if (points[2].empty() && points[3].empty()) s << "set yrange [0.01:1]\n";  // nothing positive: any log range
    plot_panel(2, 3);
  }
  s << "unset multiplot\nunset output\n";
}

}  // namespace detail

// The gnuplot script drawing `curves` into `png_path`. Self-contained: the data are inline
// datablocks ($train_acc, ...), so the text alone reruns with `gnuplot <file>`. (write_curves_png
// sends the same script with '-' data sent by gnuplot-iostream instead of datablocks.)
// requires: validate(curves) passes.
inline std::string curves_script(const Curves& curves, const std::string& png_path, const PlotStyle& style = {}) {
  validate(curves);
  detail::require_plain_path(png_path, "PNG path");
  std::ostringstream s;
  detail::emit_curves_script(s, curves, png_path, style, false, [](const detail::CurvePoints&) {});
  return s.str();
}

// Writes curves_script(curves, absolute png_path) to `script_path`; rerun with `gnuplot <script_path>`.
inline void write_curves_script_file(const Curves& curves, const std::string& script_path, const std::string& png_path,
                                     const PlotStyle& style = {}) {
  detail::require_plain_path(script_path, "script path");
  detail::require_parent_directory(script_path, "script path");
  io::write_file_atomically(script_path, curves_script(curves, detail::absolute_path(png_path), style));
}

// Draws `curves` into `png_path` through gnuplot-iostream (the script with `gp << ...`, each curve
// with gp.send1d as '-' inline data), atomically as write_heatmap_grid_png does. Throws
// GnuplotUnavailable, GnuplotFailed, or tinyattn::Error for bad curves or path.
// ensures: on return, `png_path` is a PNG of curves_figure_size(curves, style).
inline void write_curves_png(const Curves& curves, const std::string& png_path, const PlotStyle& style = {}) {
  validate(curves);
  detail::draw_png(style, png_path, curves_figure_size(curves, style),
                   [&](gnuplotio::Gnuplot& gp, const std::string& output) {
                     detail::emit_curves_script(gp, curves, output, style, true,
                                                [&](const detail::CurvePoints& points) { gp.send1d(points); });
                   });
}

}  // namespace tinyattn::plot
