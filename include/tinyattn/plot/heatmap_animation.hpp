// tinyattn/plot/heatmap_animation.hpp — a heatmap grid over time as an animated GIF (gnuplot's gif
// terminal, `animate`), one frame per snapshot, its label (e.g. the epoch) in the title.
//
//   tinyattn::plot::HeatmapAnimation a;
//   a.title = "attention from '=' at epoch %d";   // %d: the frame's label
//   a.rows = 4, a.cols = 3, a.ny = a.nx = 128;     // each frame: rows x cols cells of ny x nx
//   a.labels = {10, 20, 30};                       // one per frame
//   a.values = bytes;                              // (frames, rows, cols, ny, nx), 0..255
//   tinyattn::plot::write_heatmap_animation_gif(a, "attention_evolution.gif");
#pragma once

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tinyattn/plot/heatmap_grid.hpp"

namespace tinyattn::plot {

struct HeatmapAnimation {
  std::string title;  // printf format with one %d for the frame's label
  int rows = 0, cols = 0, ny = 0, nx = 0;
  std::vector<std::int64_t> labels;      // one per frame
  std::vector<std::uint8_t> values;      // (frames, rows, cols, ny, nx); y upward, x to the right
  std::vector<std::string> cell_titles;  // rows * cols, row-major; empty: none
  int cell_px = 150;
  int delay_centiseconds = 25;
};

// The number of images in a GIF file (its frames), walking its blocks; throws when the file is not
// a complete GIF (tinyattn::Error).
inline int gif_frame_count(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<unsigned char> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto fail = [&](const std::string& why) -> int { throw Error(path + ": not a complete GIF: " + why); };
  if (b.size() < 13 ||
      (std::string(b.begin(), b.begin() + 6) != "GIF89a" && std::string(b.begin(), b.begin() + 6) != "GIF87a"))
    return fail("no GIF87a/GIF89a signature");
  std::size_t at = 13;
  if (b[10] & 0x80) at += 3u * (1u << ((b[10] & 7) + 1));  // global colour table
  const auto skip_sub_blocks = [&] {
    while (at < b.size() && b[at] != 0) at += 1u + b[at];
    if (at >= b.size()) fail("a data block runs past the end");
    ++at;
  };
  int frames = 0;
  while (true) {
    if (at >= b.size()) return fail("no trailer (0x3B)");
    const unsigned char kind = b[at++];
    if (kind == 0x3B) return frames;
    if (kind == 0x21) {  // extension: label, then sub-blocks
      if (at >= b.size()) return fail("a cut extension");
      ++at;
      skip_sub_blocks();
    } else if (kind == 0x2C) {  // image descriptor, optional local colour table, LZW minimum, data
      if (at + 9 > b.size()) return fail("a cut image descriptor");
      const unsigned char packed = b[at + 8];
      at += 9;
      if (packed & 0x80) at += 3u * (1u << ((packed & 7) + 1));
      ++at;  // LZW minimum code size
      skip_sub_blocks();
      ++frames;
    } else {
      return fail("unknown block 0x" + std::to_string(kind) + " at byte " + std::to_string(at - 1));
    }
  }
}

// Draws `a` into `gif_path` (drawn in a temporary directory, checked to hold every frame, then
// written with io::write_file_atomically).
// Throws GnuplotUnavailable, GnuplotFailed, or tinyattn::Error for a bad animation or path.
inline void write_heatmap_animation_gif(const HeatmapAnimation& a, const std::string& gif_path,
                                        const PlotStyle& style = {}) {
  const std::size_t cell = static_cast<std::size_t>(a.ny) * static_cast<std::size_t>(a.nx);
  const std::size_t per_frame = static_cast<std::size_t>(a.rows) * static_cast<std::size_t>(a.cols) * cell;
  require(a.rows >= 1 && a.cols >= 1 && a.ny >= 1 && a.nx >= 1 && !a.labels.empty(), "tinyattn::plot: animation '",
          a.title, "' has (frames, rows, cols, ny, nx) = (", a.labels.size(), ", ", a.rows, ", ", a.cols, ", ", a.ny,
          ", ", a.nx, "); expected every extent >= 1");
  require(a.values.size() == per_frame * a.labels.size(), "tinyattn::plot: animation '", a.title, "' has ",
          a.values.size(), " values, expected ", per_frame * a.labels.size());
  require(a.cell_titles.empty() || a.cell_titles.size() == static_cast<std::size_t>(a.rows) * a.cols,
          "tinyattn::plot: animation '", a.title, "' has ", a.cell_titles.size(), " cell titles, expected ",
          a.rows * a.cols);
  // A scratch file in a private directory, read by gnuplot and removed with it: no need for the atomic
  // writer's fsync of what can be many megabytes.
  const detail::TemporaryDirectory data_directory;
  const std::string data = data_directory.file("frames.u8");
  {
    std::ofstream out(data, std::ios::binary);
    out.write(reinterpret_cast<const char*>(a.values.data()), static_cast<std::streamsize>(a.values.size()));
    out.close();
    require(!out.fail(), "tinyattn::plot: cannot write the animation's frames to '", data, "'");
  }
  const int frames = static_cast<int>(a.labels.size());
  const int width = a.cols * a.cell_px + 40, height = a.rows * a.cell_px + 70;
  detail::draw_file(
      style, gif_path, "GIF path", ".gif",
      [&](gnuplotio::Gnuplot& gp, const std::string& output) {
        gp << "set terminal gif animate delay " << a.delay_centiseconds << " size " << width << "," << height
           << " font " << detail::gnuplot_quote(style.font) << "\n";
        gp << "set output " << detail::gnuplot_quote(output) << "\n";
        gp << "set palette defined (";
        for (int i = 0; i < 9; ++i)
          gp << (i ? ", " : "") << i << " " << detail::gnuplot_quote(detail::yl_gn_bu_colors[i]);
        gp << ")\nset cbrange [0:255]\nunset colorbox\nunset key\nunset xtics\nunset ytics\n";
        gp << "set xrange [-0.5:" << a.nx - 0.5 << "]\nset yrange [-0.5:" << a.ny - 0.5 << "]\n";
        gp << "set lmargin 1\nset rmargin 1\nset tmargin 2\nset bmargin 1\n";
        gp << "array label[" << frames << "] = [";
        for (int f = 0; f < frames; ++f) gp << (f ? "," : "") << a.labels[static_cast<std::size_t>(f)];
        gp << "]\n";
        if (!a.cell_titles.empty()) {
          gp << "array cell_title[" << a.cell_titles.size() << "] = [";
          for (std::size_t c = 0; c < a.cell_titles.size(); ++c)
            gp << (c ? "," : "") << detail::gnuplot_quote(a.cell_titles[c]);
          gp << "]\n";
        }
        gp << "do for [f=1:" << frames << "] {\n"
           << "  set multiplot layout " << a.rows << "," << a.cols << " title sprintf("
           << detail::gnuplot_quote(a.title) << ", label[f])\n"
           << "  do for [c=1:" << a.rows * a.cols << "] {\n"
           << (a.cell_titles.empty() ? "" : "    set title cell_title[c]\n") << "    plot "
           << detail::gnuplot_quote(data) << " binary array=(" << a.nx << "," << a.ny
           << ") format='%uchar' skip=((f-1)*" << per_frame << "+(c-1)*" << cell << ") with image\n"
           << "  }\n  unset multiplot\n}\nset output\n";
      },
      [&](const std::string& path, const std::string& where) {
        int found = 0;
        try {
          found = gif_frame_count(path);
        } catch (const Error& e) {
          throw GnuplotFailed("tinyattn::plot: " + where + " wrote an invalid GIF: " + e.what());
        }
        if (found != frames)
          throw GnuplotFailed("tinyattn::plot: " + where + " wrote a GIF of " + std::to_string(found) +
                              " frames; expected " + std::to_string(frames));
      });
}

}  // namespace tinyattn::plot
