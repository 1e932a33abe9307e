// tinyattn/plot/gnuplot.hpp — every figure of tinyattn::plot in one include: heatmap grids (and the
// min/max experiment's presets), training curves, line charts, phase diagrams, animated heatmaps,
// all drawn by gnuplot through plot/gnuplot_runner.hpp. Include a single header to pay for less.
//
// Link tinyattn::plot (gnuplot-iostream + Boost.Iostreams).
#pragma once

#include "tinyattn/plot/curves.hpp"
#include "tinyattn/plot/gnuplot_runner.hpp"
#include "tinyattn/plot/heatmap_animation.hpp"
#include "tinyattn/plot/heatmap_grid.hpp"
#include "tinyattn/plot/line_chart.hpp"
#include "tinyattn/plot/minmax_heatmaps.hpp"
#include "tinyattn/plot/phase_diagram.hpp"
