// tinyattn/plot/line_chart.hpp — a line (or bar) chart of a few named series over a shared x axis,
// through the same gnuplot runner as the heatmaps and curves (plot/gnuplot_runner.hpp).
//
//   tinyattn::plot::LineChart chart;
//   chart.title = "Fourier spectrum of W_E";
//   chart.x_label = "frequency k";
//   chart.y_label = "norm";
//   chart.series.push_back({"|W_E| per frequency", xs, ys});
//   chart.bars = true;
//   tinyattn::plot::write_line_chart_png(chart, "fourier.png");
#pragma once

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "tinyattn/plot/gnuplot_runner.hpp"

namespace tinyattn::plot {

struct LineSeries {
  std::string label;
  std::vector<double> x, y;  // same length; NaN y values are left out
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<LineSeries> series;
  bool log_y = false;  // non-positive values are then left out
  bool bars = false;   // impulses (one bar per x) instead of lines
  int width_px = 760, height_px = 440;
};

inline void validate(const LineChart& chart) {
  require(!chart.series.empty(), "tinyattn::plot: line chart '", chart.title, "' has no series");
  require(chart.width_px >= 100 && chart.width_px <= 8000 && chart.height_px >= 100 && chart.height_px <= 8000,
          "tinyattn::plot: line chart '", chart.title, "' is ", chart.width_px, "x", chart.height_px,
          " px; expected 100..8000 each");
  for (const LineSeries& s : chart.series) {
    require(s.x.size() == s.y.size(), "tinyattn::plot: line chart '", chart.title, "' series '", s.label, "' has ",
            s.x.size(), " x values and ", s.y.size(), " y values; expected as many");
    for (std::size_t i = 0; i < s.x.size(); ++i)
      require(std::isfinite(s.x[i]) && (std::isfinite(s.y[i]) || std::isnan(s.y[i])), "tinyattn::plot: line chart '",
              chart.title, "' series '", s.label, "' point ", i, " is (", s.x[i], ", ", s.y[i],
              "); expected a finite x and a finite or NaN y");
  }
}

// The self-contained gnuplot script (data as datablocks) drawing `chart` into `png_path`.
inline std::string line_chart_script(const LineChart& chart, const std::string& png_path) {
  validate(chart);
  static const char* const colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"};
  std::ostringstream s;
  s << "set encoding utf8\n"
    << "set terminal pngcairo size " << chart.width_px << "," << chart.height_px
    << " enhanced font 'Sans,10' background '#ffffff'\n"
    << "set output " << detail::gnuplot_quote(png_path) << "\n";
  bool any_point = false;
  for (std::size_t k = 0; k < chart.series.size(); ++k) {
    s << "$s" << k << " << EOD\n";
    const LineSeries& series = chart.series[k];
    for (std::size_t i = 0; i < series.x.size(); ++i) {
      const double y = series.y[i];
      if (std::isnan(y) || (chart.log_y && y <= 0)) continue;
      s << detail::number(series.x[i]) << " " << detail::number(y) << "\n";
      any_point = true;
    }
    s << "EOD\n";
  }
  s << "set title " << detail::gnuplot_quote(chart.title) << " noenhanced font ',13'\n"
    << "set xlabel " << detail::gnuplot_quote(chart.x_label) << " noenhanced\n"
    << "set ylabel " << detail::gnuplot_quote(chart.y_label) << " noenhanced\n"
    << "set grid lc rgb '#dddddd'\nset border lc rgb '#444444'\nset key top right box opaque noenhanced\n";
  if (chart.log_y) s << "set logscale y\nset format y '10^{%L}'\n";
  if (!any_point) s << "set xrange [0:1]\nset yrange [" << (chart.log_y ? "0.1:1" : "0:1") << "]\n";
  std::string sep = "plot ";
  for (std::size_t k = 0; k < chart.series.size(); ++k) {
    s << sep << "$s" << k << " using 1:2 with " << (chart.bars ? "impulses lw 3" : "linespoints lw 2 pt 7 ps 0.5")
      << " lc rgb '" << colors[k % 7] << "' title " << detail::gnuplot_quote(chart.series[k].label);
    sep = ", \\\n     ";
  }
  s << "\nunset output\n";
  return s.str();
}

// Draws `chart` into `png_path` atomically (as write_curves_png). Throws GnuplotUnavailable,
// GnuplotFailed, or tinyattn::Error for a bad chart or path.
inline void write_line_chart_png(const LineChart& chart, const std::string& png_path, const PlotStyle& style = {}) {
  validate(chart);
  detail::draw_png(style, png_path, PngSize{chart.width_px, chart.height_px},
                   [&](gnuplotio::Gnuplot& gp, const std::string& output) { gp << line_chart_script(chart, output); });
}

}  // namespace tinyattn::plot
