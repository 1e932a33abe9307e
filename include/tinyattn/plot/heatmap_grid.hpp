// tinyattn/plot/heatmap_grid.hpp — a grid of heatmaps sharing one colour range and one colour bar
// (the attention pictures: one row per head, one column per key), as a PNG drawn by gnuplot or as a
// rerunnable script + data file pair.
//
// The data are plain floats (no model headers). write_heatmap_grid_png sends each cell as inline
// binary data (gnuplot-iostream's `binFmt2d` + `sendBinary2d`) after its plot command;
// write_heatmap_grid_script_files writes the same script reading a float32 data file instead.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tinyattn/plot/gnuplot_runner.hpp"

namespace tinyattn::plot {

// Heatmap grid: rows × cols cells, each an ny × nx image with x to the right and y upward, origin
// at the lower left, all cells sharing one colour range and one colour bar.
struct HeatmapGrid {
  // How the colour range is chosen.
  //   fixed:         [zmin, zmax] as given (e.g. [0, 1] for softmax weights, [-150, 150] for scores).
  //   symmetric_fit: [-m, m] with m = max |value| over the whole grid (m = 1 if every value is 0),
  //                  for signed quantities such as pre-softmax scores.
  enum class Range { fixed, symmetric_fit };

  std::string title;  // figure title, e.g. "max — attention weights from '='"
  int rows = 0;       // e.g. one row per head
  int cols = 0;       // e.g. one column per key (A, op, B)
  int ny = 0;         // image height (y = a)
  int nx = 0;         // image width (x = b)
  // rows*cols*ny*nx values, row-major (rows, cols, ny, nx): values[((r*cols + c)*ny + y)*nx + x].
  std::vector<float> values;
  // One label per row / column (cell titles read "<row label> → <col label>"). Empty: "row r" /
  // "col c".
  std::vector<std::string> row_labels;
  std::vector<std::string> col_labels;
  std::string x_label = "b";
  std::string y_label = "a";
  Range range = Range::fixed;
  float zmin = 0.0f;  // used when range == fixed
  float zmax = 1.0f;
  std::string colorbar_label;

  // requires: 0 <= r < rows, 0 <= c < cols, 0 <= y < ny, 0 <= x < nx and values sized to match
  // (unchecked, like operator[]).
  float& at(int r, int c, int y, int x) { return values[flat_index(r, c, y, x)]; }
  float at(int r, int c, int y, int x) const { return values[flat_index(r, c, y, x)]; }

  std::size_t flat_index(int r, int c, int y, int x) const {
    return ((static_cast<std::size_t>(r) * static_cast<std::size_t>(cols) + static_cast<std::size_t>(c)) *
                static_cast<std::size_t>(ny) +
            static_cast<std::size_t>(y)) *
               static_cast<std::size_t>(nx) +
           static_cast<std::size_t>(x);
  }
};

namespace detail {

inline const char* const yl_gn_bu_colors[9] = {"#ffffd9", "#edf8b1", "#c7e9b4", "#7fcdbb", "#41b6c4",
                                               "#1d91c0", "#225ea8", "#253494", "#081d58"};

// Layout of the heatmap figure in pixels. Fixed pixel margins (rather than fractions) keep every
// cell exactly cell_px square whatever the grid shape.
struct HeatmapLayout {
  static constexpr int left = 62;        // y tic labels + y label
  static constexpr int right = 118;      // colour bar, its tic labels and its label
  static constexpr int bottom = 52;      // x tic labels + x label
  static constexpr int top = 66;         // figure title + first row's cell titles
  static constexpr int col_gap = 16;     // no tic labels between columns
  static constexpr int row_gap = 34;     // room for the cell titles of the next row
  static constexpr int bar_offset = 22;  // colour bar distance from the last column
  static constexpr int bar_width = 18;
};

// Smallest "round" tic step that gives at most 5 tics over 0..n-1 (0, 32, 64, 96 for n = 128).
inline int tic_step(int n) {
  static const int candidates[] = {1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100, 128, 200, 250, 256, 500, 512, 1000};
  for (int step : candidates) {
    if ((n - 1) / step + 1 <= 5) return step;
  }
  return std::max(1, (n - 1) / 4);
}

}  // namespace detail

// Checks everything the script relies on. Throws tinyattn::Error saying what is wrong.
inline void validate(const HeatmapGrid& grid) {
  require(grid.rows >= 1 && grid.cols >= 1 && grid.ny >= 1 && grid.nx >= 1, "tinyattn::plot: heatmap grid '",
          grid.title, "' has shape (rows, cols, ny, nx) = (", grid.rows, ", ", grid.cols, ", ", grid.ny, ", ", grid.nx,
          "); expected every extent >= 1");
  const std::size_t expected = static_cast<std::size_t>(grid.rows) * static_cast<std::size_t>(grid.cols) *
                               static_cast<std::size_t>(grid.ny) * static_cast<std::size_t>(grid.nx);
  require(grid.values.size() == expected, "tinyattn::plot: heatmap grid '", grid.title, "' has ", grid.values.size(),
          " values; expected rows*cols*ny*nx = ", expected);
  require(grid.row_labels.empty() || grid.row_labels.size() == static_cast<std::size_t>(grid.rows),
          "tinyattn::plot: heatmap grid '", grid.title, "' has ", grid.row_labels.size(),
          " row labels; expected 0 or rows = ", grid.rows);
  require(grid.col_labels.empty() || grid.col_labels.size() == static_cast<std::size_t>(grid.cols),
          "tinyattn::plot: heatmap grid '", grid.title, "' has ", grid.col_labels.size(),
          " column labels; expected 0 or cols = ", grid.cols);
  if (grid.range == HeatmapGrid::Range::fixed) {
    require(std::isfinite(grid.zmin) && std::isfinite(grid.zmax) && grid.zmin < grid.zmax,
            "tinyattn::plot: heatmap grid '", grid.title, "' has fixed colour range [", grid.zmin, ", ", grid.zmax,
            "]; expected finite zmin < zmax");
  }
  for (std::size_t i = 0; i < grid.values.size(); ++i) {
    if (!std::isfinite(grid.values[i])) {
      const std::size_t x = i % static_cast<std::size_t>(grid.nx);
      const std::size_t y = i / static_cast<std::size_t>(grid.nx) % static_cast<std::size_t>(grid.ny);
      const std::size_t cell = i / (static_cast<std::size_t>(grid.nx) * static_cast<std::size_t>(grid.ny));
      require(false, "tinyattn::plot: heatmap grid '", grid.title, "' value at (row ",
              cell / static_cast<std::size_t>(grid.cols), ", col ", cell % static_cast<std::size_t>(grid.cols), ", y ",
              y, ", x ", x, ") is ", grid.values[i], "; expected a finite number");
    }
  }
}

// The colour range the figure uses: [zmin, zmax] for Range::fixed, [-m, m] for symmetric_fit.
// requires: validate(grid) passes.
inline std::pair<float, float> color_range(const HeatmapGrid& grid) {
  if (grid.range == HeatmapGrid::Range::fixed) return {grid.zmin, grid.zmax};
  float limit = 0.0f;
  for (float v : grid.values) limit = std::max(limit, std::fabs(v));
  if (limit == 0.0f) limit = 1.0f;  // all zero: any non-empty range shows it
  return {-limit, limit};
}

// Size of the heatmap PNG: square cells of style.cell_px plus fixed margins and one colour bar.
inline PngSize heatmap_grid_figure_size(const HeatmapGrid& grid, const PlotStyle& style = {}) {
  using L = detail::HeatmapLayout;
  require(grid.rows >= 1 && grid.cols >= 1, "tinyattn::plot: heatmap grid '", grid.title, "' has ", grid.rows, "x",
          grid.cols, " cells; expected at least 1x1");
  require(style.cell_px >= 32 && style.cell_px <= 4096, "tinyattn::plot: PlotStyle::cell_px is ", style.cell_px,
          "; expected 32..4096 pixels");
  const long width = L::left + static_cast<long>(grid.cols) * style.cell_px + (grid.cols - 1L) * L::col_gap + L::right;
  const long height = L::top + static_cast<long>(grid.rows) * style.cell_px + (grid.rows - 1L) * L::row_gap + L::bottom;
  require(width <= 32000 && height <= 32000, "tinyattn::plot: heatmap grid '", grid.title, "' of ", grid.rows, "x",
          grid.cols, " cells of ", style.cell_px, " px needs a ", width, "x", height,
          " px figure; expected at most 32000 px per side (cairo's limit)");
  return PngSize{static_cast<int>(width), static_cast<int>(height)};
}

// Writes the grid's values as raw float32 (little-endian, as the script declares) in the order of
// HeatmapGrid::values: cell (r, c) is an nx*ny array with x fastest, starting at byte
// ((r*cols + c)*ny*nx)*4. requires: validate(grid) passes.
inline void write_heatmap_grid_data(const HeatmapGrid& grid, const std::string& data_path) {
  validate(grid);
  static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559, "float32 data expected");
  std::vector<unsigned char> bytes(grid.values.size() * 4);
  for (std::size_t i = 0; i < grid.values.size(); ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, &grid.values[i], 4);
    for (int b = 0; b < 4; ++b)
      bytes[i * 4 + static_cast<std::size_t>(b)] = static_cast<unsigned char>(bits >> (8 * b));
  }
  io::write_file_atomically(data_path, bytes);
}

namespace detail {

// Writes the heatmap script for `grid` to `s`. `header` is the comment block after the title line
// (it says where the data come from); `plot_cell(r, c)` writes cell (r, c)'s plot command, and for
// inline data the data after it: the only part that differs between a saved script and the
// stream sent to gnuplot. requires: validate(grid) and heatmap_grid_figure_size(grid, style) pass.
template <class PlotCell>
void emit_heatmap_grid_script(std::ostream& s, const HeatmapGrid& grid, const std::string& png_path,
                              const std::string& header, const PlotStyle& style, PlotCell&& plot_cell) {
  using L = HeatmapLayout;
  const PngSize size = heatmap_grid_figure_size(grid, style);
  const auto [zmin, zmax] = color_range(grid);
  const int grid_width = grid.cols * style.cell_px + (grid.cols - 1) * L::col_gap;
  const int grid_height = grid.rows * style.cell_px + (grid.rows - 1) * L::row_gap;

  // Only strings and integers are streamed (the numbers are formatted by number()), so the stream's
  // own floating-point format (gnuplot-iostream sets scientific, 18 digits) does not matter.
  s << "# tinyattn heatmap grid: " << gnuplot_quote(grid.title) << "\n"
    << header << "set encoding utf8\n"
    << "set terminal pngcairo size " << size.width << "," << size.height << " enhanced font "
    << gnuplot_quote(style.font) << " background '#ffffff'\n"
    << "set output " << gnuplot_quote(png_path) << "\n"
    << "set palette defined (";
  for (int i = 0; i < 9; ++i) s << (i ? ", " : "") << i << " '" << yl_gn_bu_colors[i] << "'";
  s << ")\n"
    << "set cbrange [" << number(zmin) << ":" << number(zmax) << "]\n"
    << "set xrange [-0.5:" << number(grid.nx - 0.5) << "]\n"
    << "set yrange [-0.5:" << number(grid.ny - 0.5) << "]\n"
    << "set xtics 0," << tic_step(grid.nx) << " scale 0.6\n"
    << "set ytics 0," << tic_step(grid.ny) << " scale 0.6\n"
    << "set cbtics scale 0.6\nset tics front\n"
    << "unset key\n"
    // Fixed pixel margins make every cell cell_px square; the right margin holds the colour bar.
    << "set multiplot layout " << grid.rows << "," << grid.cols << " rowsfirst title " << gnuplot_quote(grid.title)
    << " noenhanced font ',13' margins " << fraction(L::left, size.width) << ","
    << fraction(L::left + grid_width, size.width) << "," << fraction(L::bottom, size.height) << ","
    << fraction(L::bottom + grid_height, size.height) << " spacing " << fraction(L::col_gap, size.width) << ","
    << fraction(L::row_gap, size.height) << "\n";

  for (int r = 0; r < grid.rows; ++r) {
    for (int c = 0; c < grid.cols; ++c) {
      const std::string row_label = grid.row_labels.empty() ? "row " + std::to_string(r) : grid.row_labels[r];
      const std::string col_label = grid.col_labels.empty() ? "col " + std::to_string(c) : grid.col_labels[c];
      const bool bottom_row = r == grid.rows - 1;
      const bool left_col = c == 0;
      const bool last_cell = bottom_row && c == grid.cols - 1;
      s << "# cell (" << r << ", " << c << ")\n"
        << "set title " << gnuplot_quote(row_label + " \u2192 " + col_label) << " noenhanced offset 0,-0.6\n";
      // Tic labels and axis labels only on the outer edge keep the grid tight.
      if (bottom_row) {
        s << "set format x '%g'\nset xlabel " << gnuplot_quote(grid.x_label) << " noenhanced offset 0,0.6\n";
      } else {
        s << "set format x ''\nunset xlabel\n";
      }
      if (left_col) {
        s << "set format y '%g'\nset ylabel " << gnuplot_quote(grid.y_label) << " noenhanced\n";
      } else {
        s << "set format y ''\nunset ylabel\n";
      }
      // One colour bar for the whole grid (all cells share cbrange), drawn with the last cell and
      // spanning the grid's full height.
      if (last_cell) {
        s << "set colorbox user origin " << fraction(L::left + grid_width + L::bar_offset, size.width) << ","
          << fraction(L::bottom, size.height) << " size " << fraction(L::bar_width, size.width) << ","
          << fraction(grid_height, size.height) << "\n"
          << "set cblabel " << gnuplot_quote(grid.colorbar_label) << " noenhanced\n";
      } else {
        s << "unset colorbox\n";
      }
      plot_cell(r, c);
    }
  }
  s << "unset multiplot\nunset output\n";
}

// Sends the heatmap script to gnuplot through gnuplot-iostream, each cell's values inline right
// after its `plot '-' binary ... with image` command: binFmt2d describes an ny-long vector of
// nx-long rows as `format='%float' array=(nx,ny)` (x fastest, native byte order, which is right
// for a pipe to a gnuplot on this machine) and sendBinary2d writes them in that order.
// requires: validate(grid) and heatmap_grid_figure_size(grid, style) pass.
inline void send_heatmap_grid(gnuplotio::Gnuplot& gp, const HeatmapGrid& grid, const std::string& png_path,
                              const PlotStyle& style) {
  std::vector<std::vector<float>> cell(static_cast<std::size_t>(grid.ny),
                                       std::vector<float>(static_cast<std::size_t>(grid.nx)));
  const std::string header = "# " + std::to_string(grid.rows) + "x" + std::to_string(grid.cols) + " cells of " +
                             std::to_string(grid.ny) + "x" + std::to_string(grid.nx) +
                             " (y x) values, each sent as inline binary data after its plot command.\n";
  emit_heatmap_grid_script(gp, grid, png_path, header, style, [&](int r, int c) {
    for (int y = 0; y < grid.ny; ++y) {
      const auto row = grid.values.begin() + static_cast<std::ptrdiff_t>(grid.flat_index(r, c, y, 0));
      std::copy(row, row + grid.nx, cell[static_cast<std::size_t>(y)].begin());
    }
    gp << "plot '-' binary" << gp.binFmt2d(cell, "array") << "with image\n";
    gp.sendBinary2d(cell);
  });
}

}  // namespace detail

// The gnuplot script drawing `grid` into `png_path` from the data file `data_path` written by
// write_heatmap_grid_data (the script holds no data: each cell is read from that file with
// `binary array=(nx,ny) format='%float32' endian=little skip=<byte offset>`). Paths are written
// as given; pass absolute paths for a script that runs from any directory. (write_heatmap_grid_png
// sends the same script with the data inline instead.)
// requires: validate(grid) passes. ensures: the script ends with `unset output`, so the PNG is
// complete when gnuplot exits.
inline std::string heatmap_grid_script(const HeatmapGrid& grid, const std::string& png_path,
                                       const std::string& data_path, const PlotStyle& style = {}) {
  validate(grid);
  detail::require_plain_path(png_path, "PNG path");
  detail::require_plain_path(data_path, "heatmap data path");
  heatmap_grid_figure_size(grid, style);  // checks the style before anything is written
  const std::size_t cell_values = static_cast<std::size_t>(grid.nx) * static_cast<std::size_t>(grid.ny);
  std::ostringstream header;
  header << "# " << grid.rows << "x" << grid.cols << " cells of " << grid.ny << "x" << grid.nx
         << " (y x) float32 little-endian values from the data file, x fastest,\n"
         << "# cell (r, c) at byte offset ((r*" << grid.cols << " + c)*" << cell_values << ")*4.\n"
         << "# Rerun with: gnuplot <this file>\n";
  std::ostringstream s;
  detail::emit_heatmap_grid_script(s, grid, png_path, header.str(), style, [&](int r, int c) {
    const std::size_t offset =
        (static_cast<std::size_t>(r) * static_cast<std::size_t>(grid.cols) + static_cast<std::size_t>(c)) *
        cell_values * 4;
    s << "plot " << detail::gnuplot_quote(data_path) << " binary array=(" << grid.nx << "," << grid.ny
      << ") format='%float32' endian=little skip=" << offset << " with image\n";
  });
  return s.str();
}

// Writes a rerunnable pair: the script `script_path` and its data file (script_path with the
// extension replaced by ".bin"), with absolute paths inside so `gnuplot <script_path>` works from
// any directory and writes `png_path`. Returns the data file's path.
inline std::string write_heatmap_grid_script_files(const HeatmapGrid& grid, const std::string& script_path,
                                                   const std::string& png_path, const PlotStyle& style = {}) {
  detail::require_plain_path(script_path, "script path");
  detail::require_parent_directory(script_path, "script path");
  std::filesystem::path data = std::filesystem::path(detail::absolute_path(script_path));
  data.replace_extension(".bin");
  require(data != std::filesystem::path(detail::absolute_path(script_path)), "tinyattn::plot: script path '",
          script_path, "' ends in '.bin', the data file's name; expected another extension such as '.gp'");
  write_heatmap_grid_data(grid, data.string());
  io::write_file_atomically(script_path,
                            heatmap_grid_script(grid, detail::absolute_path(png_path), data.string(), style));
  return data.string();
}

// Draws `grid` into `png_path` by sending the script and the data to gnuplot through
// gnuplot-iostream. gnuplot writes into a temporary directory; the file is checked (exit status 0,
// PNG signature, expected size) and then written to `png_path` with io::write_file_atomically, so a
// failed plot never leaves a partial PNG. Throws GnuplotUnavailable, GnuplotFailed, or tinyattn::Error for a
// bad grid or path. ensures: on return, `png_path` is a PNG of heatmap_grid_figure_size(grid, style).
inline void write_heatmap_grid_png(const HeatmapGrid& grid, const std::string& png_path, const PlotStyle& style = {}) {
  validate(grid);
  detail::draw_png(
      style, png_path, heatmap_grid_figure_size(grid, style),
      [&](gnuplotio::Gnuplot& gp, const std::string& output) { detail::send_heatmap_grid(gp, grid, output, style); });
}

}  // namespace tinyattn::plot
