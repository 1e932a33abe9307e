// tinyattn/plot/phase_diagram.hpp — one value over a grid of two hyper-parameters (a phase diagram of
// a sweep: final test accuracy over weight decay x training fraction), each cell coloured and labelled
// with its value, the axes ticked with the hyper-parameters' values.
//
//   tinyattn::plot::PhaseDiagram d;
//   d.title = "final test accuracy (mean over 8 seeds)";
//   d.x_label = "weight decay";   d.x_ticks = {"0.1", "1", "3"};
//   d.y_label = "train fraction"; d.y_ticks = {"0.2", "0.33"};
//   d.values = {...};             // y-major: values[y * x_ticks.size() + x]; NaN: no data (grey, "-")
//   tinyattn::plot::write_phase_diagram_png(d, "phase.png");
#pragma once

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "tinyattn/plot/gnuplot_runner.hpp"

namespace tinyattn::plot {

struct PhaseDiagram {
  std::string title, x_label, y_label, z_label;
  std::vector<std::string> x_ticks, y_ticks;  // one per column / row
  std::vector<double> values;                 // y-major; NaN: no data
  double zmin = 0, zmax = 1;                  // colour range (zmin < zmax)
  const char* cell_format = "%.3g";           // printf format of each cell's label
  int width_px = 760, height_px = 520;
};

inline void validate(const PhaseDiagram& d) {
  require(!d.x_ticks.empty() && !d.y_ticks.empty(), "tinyattn::plot: phase diagram '", d.title, "' has ",
          d.x_ticks.size(), " x and ", d.y_ticks.size(), " y values; expected at least one each");
  require(d.values.size() == d.x_ticks.size() * d.y_ticks.size(), "tinyattn::plot: phase diagram '", d.title, "' has ",
          d.values.size(), " values; expected ", d.x_ticks.size(), " x ", d.y_ticks.size());
  require(std::isfinite(d.zmin) && std::isfinite(d.zmax) && d.zmin < d.zmax, "tinyattn::plot: phase diagram '", d.title,
          "' has the colour range [", d.zmin, ", ", d.zmax, "]; expected finite zmin < zmax");
  for (double v : d.values)
    require(std::isfinite(v) || std::isnan(v), "tinyattn::plot: phase diagram '", d.title, "' holds ", v,
            "; expected finite values or NaN");
  require(d.width_px >= 100 && d.width_px <= 8000 && d.height_px >= 100 && d.height_px <= 8000,
          "tinyattn::plot: phase diagram '", d.title, "' is ", d.width_px, "x", d.height_px,
          " px; expected 100..8000 each");
}

// The self-contained gnuplot script drawing `d` into `png_path`.
inline std::string phase_diagram_script(const PhaseDiagram& d, const std::string& png_path) {
  validate(d);
  const std::size_t nx = d.x_ticks.size(), ny = d.y_ticks.size();
  std::ostringstream s;
  s << "set encoding utf8\n"
    << "set terminal pngcairo size " << d.width_px << "," << d.height_px
    << " enhanced font 'Sans,10' background '#ffffff'\n"
    << "set output " << detail::gnuplot_quote(png_path) << "\n";
  // Cells with data (coloured, labelled with the value) and cells without (grey, labelled '-').
  s << "$cells << EOD\n";
  for (std::size_t y = 0; y < ny; ++y)
    for (std::size_t x = 0; x < nx; ++x) {
      const double v = d.values[y * nx + x];
      if (std::isnan(v)) continue;
      char label[64];
      std::snprintf(label, sizeof label, d.cell_format, v);
      s << x << " " << y << " " << detail::number(v) << " \"" << label << "\"\n";
    }
  s << "EOD\n$empty << EOD\n";
  for (std::size_t y = 0; y < ny; ++y)
    for (std::size_t x = 0; x < nx; ++x)
      if (std::isnan(d.values[y * nx + x])) s << x << " " << y << "\n";
  s << "EOD\n";
  s << "set title " << detail::gnuplot_quote(d.title) << " noenhanced font ',13'\n"
    << "set xlabel " << detail::gnuplot_quote(d.x_label) << " noenhanced\n"
    << "set ylabel " << detail::gnuplot_quote(d.y_label) << " noenhanced\n"
    << "set cblabel " << detail::gnuplot_quote(d.z_label) << " noenhanced\n"
    << "set xrange [-0.5:" << detail::number(static_cast<double>(nx) - 0.5) << "]\n"
    << "set yrange [-0.5:" << detail::number(static_cast<double>(ny) - 0.5) << "]\n"
    << "set cbrange [" << detail::number(d.zmin) << ":" << detail::number(d.zmax) << "]\n"
    << "set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', 1 '#fde725')\n"
    << "set border lc rgb '#444444'\nunset key\nset tics scale 0\n";
  auto ticks = [&](const char* axis, const std::vector<std::string>& labels) {
    s << "set " << axis << " (";
    for (std::size_t i = 0; i < labels.size(); ++i)
      s << (i ? ", " : "") << detail::gnuplot_quote(labels[i]) << " " << i;
    s << ") noenhanced\n";
  };
  ticks("xtics", d.x_ticks);
  ticks("ytics", d.y_ticks);
  s << "plot $cells using 1:2:(0.5):(0.5):3 with boxxyerror fill solid 1.0 noborder lc palette, \\\n"
    << "     $empty using 1:2:(0.5):(0.5) with boxxyerror fill solid 1.0 noborder lc rgb '#cccccc', \\\n"
    << "     $empty using 1:2:('-') with labels font ',11' tc rgb '#444444', \\\n"
    << "     $cells using 1:2:($3 > " << detail::number((d.zmin + d.zmax) / 2)
    << " ? stringcolumn(4) : '') with labels font ',11' tc rgb '#111111' noenhanced, \\\n"
    << "     $cells using 1:2:($3 > " << detail::number((d.zmin + d.zmax) / 2)
    << " ? '' : stringcolumn(4)) with labels font ',11' tc rgb '#ffffff' noenhanced\n"
    << "unset output\n";
  return s.str();
}

// Draws `d` into `png_path` atomically (as write_curves_png). Throws GnuplotUnavailable, GnuplotFailed,
// or tinyattn::Error for a bad diagram or path.
inline void write_phase_diagram_png(const PhaseDiagram& d, const std::string& png_path, const PlotStyle& style = {}) {
  validate(d);
  detail::draw_png(style, png_path, PngSize{d.width_px, d.height_px},
                   [&](gnuplotio::Gnuplot& gp, const std::string& output) { gp << phase_diagram_script(d, output); });
}

}  // namespace tinyattn::plot
