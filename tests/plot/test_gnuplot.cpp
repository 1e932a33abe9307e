// Tests for tinyattn/plot/heatmap_grid.hpp, curves.hpp, minmax_heatmaps.hpp and the runner under
// them (gnuplot_runner.hpp): script contents, PNG output, error reporting, SIGPIPE handling, the
// GNUPLOT_IOSTREAM_CMD convention, and that the PNGs are drawn through gnuplot-iostream's
// `Gnuplot` pipe (script with <<, heatmap cells as inline binary, curves with send1d). PNG tests
// need gnuplot with pngcairo and say so when skipped.
#include "tinyattn/plot/gnuplot.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <pthread.h>
#include <signal.h>

namespace fs = std::filesystem;
using namespace tinyattn::plot;

namespace {

// A fresh, empty directory for one test's files under the build tree.
fs::path output_dir(const std::string& test_name) {
  const fs::path dir = fs::path(TINYATTN_TEST_BINARY_DIR) / "plot_test_output" / test_name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(static_cast<bool>(in), "cannot read " << path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
  return count;
}

// Files in `dir` other than the expected ones: leftovers such as partial PNGs.
std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// The message of the exception of type E thrown by `action`; fails the test when none is thrown.
template <class E, class Action>
std::string message_of(Action action) {
  try {
    action();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected another exception type, caught: " << e.what());
  }
  FAIL("expected an exception, none was thrown");
  return {};
}

bool have_gnuplot() {
  static const bool available = gnuplot_available("gnuplot");
  if (!available) MESSAGE("gnuplot not found on PATH: PNG checks skipped");
  return available;
}

// Sets (or unsets, for nullopt) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = std::string(old);
    apply(value);
  }
  ~ScopedEnv() { apply(old_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  void apply(const std::optional<std::string>& value) {
    if (value) {
      ::setenv(name_, value->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  const char* name_;
  std::optional<std::string> old_;
};

// Captures what is written to std::cerr for one scope (gnuplot-iostream reports there).
class CaptureCerr {
 public:
  CaptureCerr() : old_(std::cerr.rdbuf(text_.rdbuf())) {}
  ~CaptureCerr() { std::cerr.rdbuf(old_); }
  CaptureCerr(const CaptureCerr&) = delete;
  CaptureCerr& operator=(const CaptureCerr&) = delete;
  std::string text() const { return text_.str(); }

 private:
  std::ostringstream text_;
  std::streambuf* old_;
};

// The current SIGPIPE handler.
void (*sigpipe_handler())(int) {
  struct sigaction current {};
  ::sigaction(SIGPIPE, nullptr, &current);
  return current.sa_handler;
}

volatile sig_atomic_t signals_counted = 0;
void count_signal(int) { signals_counted = signals_counted + 1; }

// The float's bytes as stored in memory (what gnuplot-iostream's sendBinary writes).
std::string native_bytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

// 2 heads x 3 keys x 8x8: head 0 sees a diagonal boundary at a = b, head 1 is uniform.
HeatmapGrid small_weights_grid() {
  HeatmapGrid grid = attention_weights_grid("max", 2, 8);
  for (int a = 0; a < 8; ++a) {
    for (int b = 0; b < 8; ++b) {
      const float p = 1.0f / (1.0f + std::exp(-(a - b) / 1.5f));
      grid.at(0, 0, a, b) = p;
      grid.at(0, 2, a, b) = 1.0f - p;
      for (int key = 0; key < 3; ++key) grid.at(1, key, a, b) = 1.0f / 3.0f;
    }
  }
  return grid;
}

HeatmapGrid small_scores_grid() {
  HeatmapGrid grid = attention_scores_grid("min", 2, 8);
  for (int a = 0; a < 8; ++a) {
    for (int b = 0; b < 8; ++b) grid.at(0, 0, a, b) = 0.5f * static_cast<float>(b - a);  // -3.5 .. 3.5
  }
  grid.at(1, 2, 3, 4) = -7.25f;  // the largest magnitude sets the symmetric range
  return grid;
}

Curves small_curves() {
  Curves curves;
  curves.title = "min/max task";
  for (int epoch = 1; epoch <= 40; ++epoch) {
    curves.epoch.push_back(epoch);
    curves.train_acc.push_back(1.0 - 0.9 * std::exp(-epoch / 8.0));
    curves.test_acc.push_back(epoch % 5 == 0 ? 1.0 - 0.95 * std::exp(-epoch / 10.0) : NAN);  // every 5th epoch
    curves.train_loss.push_back(4.0 * std::exp(-epoch / 6.0));
    curves.test_loss.push_back(epoch % 5 == 0 ? 4.5 * std::exp(-epoch / 7.0) : NAN);
  }
  return curves;
}

// The checks every produced PNG must pass: signature, IHDR size as asked, not trivially small.
void check_png(const fs::path& png, PngSize expected) {
  REQUIRE_MESSAGE(fs::is_regular_file(png), png << " was not written");
  CHECK(read_png_size(png.string()) == expected);
  CHECK(fs::file_size(png) > 1024);
  const std::string head = read_file(png).substr(0, 8);
  CHECK(head == std::string("\x89PNG\r\n\x1a\n", 8));
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// (a) Script contents

TEST_CASE("heatmap script for weights has terminal palette layout range labels and image plots") {
  const fs::path dir = output_dir("weights_script");
  const HeatmapGrid grid = small_weights_grid();
  const fs::path script = dir / "weights.gp";
  const std::string data = write_heatmap_grid_script_files(grid, script.string(), (dir / "weights.png").string());
  const std::string text = read_file(script);

  const PngSize size = heatmap_grid_figure_size(grid);
  CHECK(text.find("set terminal pngcairo size " + std::to_string(size.width) + "," + std::to_string(size.height)) !=
        std::string::npos);
  CHECK(text.find("set output '" + (dir / "weights.png").string() + "'") != std::string::npos);
  for (const char* color :
       {"#ffffd9", "#edf8b1", "#c7e9b4", "#7fcdbb", "#41b6c4", "#1d91c0", "#225ea8", "#253494", "#081d58"}) {
    CHECK_MESSAGE(text.find(std::string("'") + color + "'") != std::string::npos, "palette colour " << color);
  }
  CHECK(text.find("set palette defined (0 '#ffffd9'") != std::string::npos);
  CHECK(text.find("set multiplot layout 2,3") != std::string::npos);
  CHECK(text.find("set cbrange [0:1]") != std::string::npos);
  CHECK(text.find("set xrange [-0.5:7.5]") != std::string::npos);
  CHECK(text.find("set yrange [-0.5:7.5]") != std::string::npos);
  CHECK(text.find("title 'max \u2014 attention weights from ''='''") != std::string::npos);
  CHECK(text.find("set title 'max \u2014 head 0 \u2192 A'") != std::string::npos);
  CHECK(text.find("set title 'max \u2014 head 1 \u2192 B'") != std::string::npos);
  CHECK(text.find("set xlabel 'b'") != std::string::npos);
  CHECK(text.find("set ylabel 'a'") != std::string::npos);
  CHECK(text.find("set cblabel 'attention weight'") != std::string::npos);
  CHECK(count_of(text, "with image") == 6);
  CHECK(count_of(text, "binary array=(8,8) format='%float32' endian=little") == 6);
  CHECK(text.find("skip=1280 with image") != std::string::npos);  // cell (1, 2): 5 cells * 64 values * 4 bytes
  // Exactly one colour bar, placed by hand; every other cell has none.
  CHECK(count_of(text, "set colorbox user") == 1);
  CHECK(count_of(text, "unset colorbox") == 5);
  CHECK(text.find("-persist") == std::string::npos);
  CHECK(text.find("unset output") != std::string::npos);
  // The script references the data file, it does not contain the data.
  CHECK(text.size() < 8000);
  CHECK(text.find("'" + data + "' binary") != std::string::npos);

  // The data file is the values as float32 little-endian in (rows, cols, ny, nx) order.
  const std::string bytes = read_file(data);
  REQUIRE(bytes.size() == grid.values.size() * 4);
  for (std::size_t i : {std::size_t{0}, std::size_t{9}, grid.flat_index(1, 2, 7, 7)}) {
    std::uint32_t bits = 0;
    for (int b = 0; b < 4; ++b) bits |= std::uint32_t{static_cast<unsigned char>(bytes[i * 4 + b])} << (8 * b);
    float value;
    std::memcpy(&value, &bits, 4);
    CHECK(value == grid.values[i]);
  }
}

TEST_CASE("heatmap script for scores has a symmetric colour range fitted to the data or given") {
  const fs::path dir = output_dir("scores_script");
  HeatmapGrid grid = small_scores_grid();
  CHECK(color_range(grid) == std::pair<float, float>(-7.25f, 7.25f));
  write_heatmap_grid_script_files(grid, (dir / "fit.gp").string(), (dir / "fit.png").string());
  const std::string fitted = read_file(dir / "fit.gp");
  CHECK(fitted.find("set cbrange [-7.25:7.25]") != std::string::npos);
  CHECK(fitted.find("set cblabel 'attention score'") != std::string::npos);
  CHECK(fitted.find("set multiplot layout 2,3") != std::string::npos);

  grid.values.assign(grid.values.size(), 0.0f);  // all zero: still a usable range
  CHECK(color_range(grid) == std::pair<float, float>(-1.0f, 1.0f));

  const HeatmapGrid notebook = attention_scores_grid("max", 1, 4, 150.0f);  // the notebook's ±150
  CHECK(color_range(notebook) == std::pair<float, float>(-150.0f, 150.0f));
  CHECK(heatmap_grid_script(notebook, "out.png", "data.bin").find("set cbrange [-150:150]") != std::string::npos);
}

TEST_CASE("scripts quote user text without command substitution or line breaks") {
  HeatmapGrid grid = small_weights_grid();
  grid.title = "it's `rm -rf /` \"x\"\nsecond line";
  const std::string text = heatmap_grid_script(grid, "out.png", "data.bin");
  // Single-quoted gnuplot strings process no escapes and no backquotes.
  CHECK(text.find("title 'it''s `rm -rf /` \"x\" second line' noenhanced") != std::string::npos);
  CHECK(text.find("\nsecond line") == std::string::npos);
}

TEST_CASE("heatmap grids are validated with messages that say what and where") {
  HeatmapGrid grid = small_weights_grid();
  grid.values.pop_back();
  CHECK(message_of<tinyattn::Error>([&] { validate(grid); }).find("383 values; expected rows*cols*ny*nx = 384") !=
        std::string::npos);

  grid = small_weights_grid();
  grid.at(1, 2, 3, 4) = NAN;
  CHECK(message_of<tinyattn::Error>([&] {
          heatmap_grid_script(grid, "o.png", "d.bin");
        }).find("(row 1, col 2, y 3, x 4) is nan; expected a finite number") != std::string::npos);

  grid = small_weights_grid();
  grid.col_labels.pop_back();
  CHECK(message_of<tinyattn::Error>([&] { validate(grid); }).find("2 column labels; expected 0 or cols = 3") !=
        std::string::npos);

  grid = small_weights_grid();
  grid.zmin = 1.0f;
  CHECK(message_of<tinyattn::Error>([&] { validate(grid); }).find("fixed colour range [1, 1]") != std::string::npos);

  grid = small_weights_grid();
  grid.row_labels.clear();  // default labels
  CHECK(heatmap_grid_script(grid, "o.png", "d.bin").find("set title 'row 1 \u2192 op'") != std::string::npos);

  CHECK(message_of<tinyattn::Error>([&] {
          heatmap_grid_script(small_weights_grid(), "a\nb.png", "d.bin");
        }).find("contains a control character") != std::string::npos);
  CHECK(message_of<tinyattn::Error>([&] {
          write_heatmap_grid_png(small_weights_grid(), "/nonexistent-dir-tinyattn/x.png");
        }).find("directory '/nonexistent-dir-tinyattn' of PNG path") != std::string::npos);
}

TEST_CASE("curves script has two panels with accuracy in percent and log-scale losses") {
  const fs::path dir = output_dir("curves_script");
  const Curves curves = small_curves();
  write_curves_script_file(curves, (dir / "curves.gp").string(), (dir / "curves.png").string());
  const std::string text = read_file(dir / "curves.gp");
  const PngSize size = curves_figure_size(curves);
  CHECK(size == PngSize{2 * PlotStyle{}.curves_panel_width_px, PlotStyle{}.curves_height_px});
  CHECK(text.find("set terminal pngcairo size " + std::to_string(size.width) + "," + std::to_string(size.height)) !=
        std::string::npos);
  CHECK(text.find("set multiplot layout 1,2 title 'min/max task'") != std::string::npos);
  CHECK(text.find("set ylabel 'accuracy (%)'") != std::string::npos);
  CHECK(text.find("set logscale y") != std::string::npos);
  for (const char* block : {"$train_acc << EOD", "$test_acc << EOD", "$train_loss << EOD", "$test_loss << EOD"}) {
    CHECK_MESSAGE(text.find(block) != std::string::npos, block);
  }
  // Accuracy is written in %: epoch 5 test accuracy = 100 * (1 - 0.95 e^-0.5).
  const std::string test_acc =
      text.substr(text.find("$test_acc << EOD"), text.find("$train_loss") - text.find("$test_acc"));
  CHECK(count_of(test_acc, "\n") == 1 + 8 + 1);  // header, 8 measured epochs, EOD
  CHECK(test_acc.find("\n5 42.3795") != std::string::npos);
  CHECK(text.find("nan") == std::string::npos);
  CHECK(text.find("with lines lw 2 lc rgb '#1f77b4' title 'train'") != std::string::npos);

  Curves accuracy_only = curves;
  accuracy_only.train_loss.clear();
  accuracy_only.test_loss.clear();
  CHECK(curves_figure_size(accuracy_only).width == PlotStyle{}.curves_panel_width_px);
  CHECK(curves_script(accuracy_only, "o.png").find("set multiplot layout 1,1") != std::string::npos);
  CHECK(curves_script(accuracy_only, "o.png").find("logscale") == std::string::npos);
}

TEST_CASE("curves are validated with messages that say what and where") {
  Curves curves = small_curves();
  curves.train_acc[3] = 1.5;  // a percentage passed as a fraction would be caught here
  CHECK(message_of<tinyattn::Error>([&] {
          validate(curves);
        }).find("train_acc[3] (epoch 4) is 1.5; expected a fraction in [0, 1]") != std::string::npos);
  curves = small_curves();
  curves.test_loss.pop_back();
  CHECK(message_of<tinyattn::Error>([&] {
          validate(curves);
        }).find("test_loss has 39 values; expected 0 or one per epoch (40)") != std::string::npos);
  curves = small_curves();
  curves.train_loss[0] = -1.0;
  CHECK(message_of<tinyattn::Error>([&] { validate(curves); }).find("expected a finite loss >= 0") !=
        std::string::npos);
  CHECK(message_of<tinyattn::Error>([&] { validate(Curves{}); }).find("no epochs") != std::string::npos);
}

TEST_CASE("gnuplot_available and read_png_size") {
  CHECK_FALSE(gnuplot_available("/nonexistent/gnuplot"));
  CHECK_FALSE(gnuplot_available(""));
  CHECK(gnuplot_available("sh -c 'exit 3'"));
  CHECK(gnuplot_available("LC_ALL=C sh -c true"));  // assignments are skipped
  CHECK_FALSE(gnuplot_available("LC_ALL=C /nonexistent/gnuplot"));

  const fs::path dir = output_dir("read_png_size");
  write_file(dir / "not.png", "definitely not a PNG file, but long enough");
  CHECK(message_of<tinyattn::Error>([&] {
          read_png_size((dir / "not.png").string());
        }).find("does not start with the PNG signature") != std::string::npos);
}

// ------------------------------------------------------------------------------------------------
// (b) PNGs

TEST_CASE("heatmap PNGs have the PNG signature and the asked-for size and saved scripts rerun") {
  if (!have_gnuplot()) return;
  const fs::path dir = output_dir("heatmap_png");
  const HeatmapGrid grid = small_weights_grid();
  const fs::path png = dir / "weights.png";
  write_heatmap_grid_png(grid, png.string());
  check_png(png, heatmap_grid_figure_size(grid));
  CHECK(files_in(dir) == std::vector<std::string>{"weights.png"});  // no partial file, no data file

  const HeatmapGrid scores = small_scores_grid();
  PlotStyle style;
  style.cell_px = 100;
  write_heatmap_grid_png(scores, (dir / "scores.png").string(), style);
  check_png(dir / "scores.png", heatmap_grid_figure_size(scores, style));
  CHECK(heatmap_grid_figure_size(scores, style).width < heatmap_grid_figure_size(scores).width);

  // The notebook's size: 128x128 cells.
  HeatmapGrid full = attention_weights_grid("min", 1, 128);
  for (int a = 0; a < 128; ++a) {
    for (int b = 0; b < 128; ++b) full.at(0, 0, a, b) = a < b ? 1.0f : 0.0f;
  }
  write_heatmap_grid_png(full, (dir / "full.png").string());
  check_png(dir / "full.png", heatmap_grid_figure_size(full));

  // The saved pair reruns with plain `gnuplot file.gp` from another directory.
  const fs::path rerun_png = dir / "rerun.png";
  write_heatmap_grid_script_files(grid, (dir / "saved.gp").string(), rerun_png.string());
  const std::string command = "cd / && gnuplot '" + (dir / "saved.gp").string() + "'";
  REQUIRE(std::system(command.c_str()) == 0);
  check_png(rerun_png, heatmap_grid_figure_size(grid));
  // Data sent inline through the pipe or read from the saved file: the same picture, byte for byte.
  CHECK(read_file(rerun_png) == read_file(png));
}

TEST_CASE("curves PNGs have the PNG signature and the asked-for size") {
  if (!have_gnuplot()) return;
  const fs::path dir = output_dir("curves_png");
  const Curves curves = small_curves();
  write_curves_png(curves, (dir / "curves.png").string());
  check_png(dir / "curves.png", curves_figure_size(curves));

  // Degenerate but legal: one epoch, a series with nothing drawable, zero losses.
  Curves tiny;
  tiny.epoch = {7};
  tiny.train_acc = {0.5};
  tiny.test_acc = {NAN};
  tiny.train_loss = {0.0};
  write_curves_png(tiny, (dir / "tiny.png").string());
  check_png(dir / "tiny.png", curves_figure_size(tiny));
  CHECK(files_in(dir) == std::vector<std::string>{"curves.png", "tiny.png"});

  // The saved script (datablocks) draws the same picture as the piped one (send1d data).
  const fs::path saved_dir = output_dir("curves_png_saved");
  write_curves_script_file(curves, (saved_dir / "curves.gp").string(), (saved_dir / "rerun.png").string());
  const std::string command = "cd / && gnuplot '" + (saved_dir / "curves.gp").string() + "'";
  REQUIRE(std::system(command.c_str()) == 0);
  CHECK(read_file(saved_dir / "rerun.png") == read_file(dir / "curves.png"));
}

TEST_CASE("PNGs are drawn through gnuplot-iostream: script, inline binary cells and send1d curves") {
  if (!have_gnuplot()) return;
  const fs::path dir = output_dir("transport");
  const fs::path record = dir.parent_path() / "transport-stdin.txt";
  PlotStyle style;
  // Records gnuplot's standard input (what the Gnuplot object wrote to the pipe) and draws from it.
  style.gnuplot_command = "tee '" + record.string() + "' | gnuplot";

  const HeatmapGrid grid = small_weights_grid();
  const fs::path png = dir / "weights.png";
  write_heatmap_grid_png(grid, png.string(), style);
  check_png(png, heatmap_grid_figure_size(grid));
  std::string sent = read_file(record);
  CHECK(sent.rfind("# tinyattn heatmap grid: 'max \u2014 attention weights from ''='''\n", 0) == 0);
  CHECK(sent.find("set multiplot layout 2,3") != std::string::npos);
  // gnuplot draws into a private temporary directory; the checked PNG is then written atomically.
  CHECK(sent.find("set output '" + (fs::temp_directory_path() / "tinyattn-plot-").string()) != std::string::npos);
  CHECK(sent.find(png.string()) == std::string::npos);
  CHECK(sent.find("-persist") == std::string::npos);
  // gnuplot-iostream's binFmt2d header, then its sendBinary2d data: 8 rows (y) of 8 floats (x).
  const std::string plot_line = "plot '-' binary format='%float' array=(8,8) with image\n";
  CHECK(count_of(sent, plot_line) == 6);
  CHECK(sent.find("with image\nset ") == std::string::npos);  // each plot line is followed by data
  const std::size_t last = sent.rfind(plot_line);
  REQUIRE(last != std::string::npos);
  const std::size_t data_at = last + plot_line.size();
  const std::vector<float> cell_1_2(grid.values.begin() + static_cast<std::ptrdiff_t>(grid.flat_index(1, 2, 0, 0)),
                                    grid.values.end());
  REQUIRE(cell_1_2.size() == 64);
  CHECK(sent.compare(data_at, 64 * sizeof(float), native_bytes(cell_1_2)) == 0);
  CHECK(sent.substr(data_at + 64 * sizeof(float)) == "unset multiplot\nunset output\n");
  const std::vector<float> cell_0_0(grid.values.begin(), grid.values.begin() + 64);
  CHECK(sent.find(native_bytes(cell_0_0)) != std::string::npos);

  const Curves curves = small_curves();
  write_curves_png(curves, (dir / "curves.png").string(), style);
  check_png(dir / "curves.png", curves_figure_size(curves));
  sent = read_file(record);
  CHECK(sent.rfind("# tinyattn training curves: 'min/max task'\n", 0) == 0);
  CHECK(sent.find("<< EOD") == std::string::npos);  // no datablocks: '-' data from send1d
  CHECK(count_of(sent, "'-' using 1:2 with lines lw 2") == 4);
  CHECK(sent.find("plot '-' using 1:2 with lines lw 2 lc rgb '#1f77b4' title 'train', \\\n     '-' using 1:2") !=
        std::string::npos);
  CHECK(count_of(sent, "\ne\n") == 4);  // gnuplot-iostream's end-of-data token after each curve
  // send1d writes (epoch, value) pairs in scientific notation: epoch 5 test accuracy = 42.3795...%.
  CHECK(sent.find("\n5 4.23795") != std::string::npos);
  CHECK(files_in(dir) == std::vector<std::string>{"curves.png", "weights.png"});
}

TEST_CASE("a gnuplot that stops reading yields GnuplotFailed, not a SIGPIPE death") {
  const fs::path dir = output_dir("sigpipe");
  const fs::path png = dir / "out.png";
  // 6 cells of 128x128 float32 (384 KiB) cannot fit in a pipe buffer: writing after the reader is
  // gone fails with EPIPE, which would raise SIGPIPE.
  HeatmapGrid big = attention_weights_grid("max", 2, 128);
  big.values.assign(big.values.size(), 0.5f);
  PlotStyle style;

  // With the default action a SIGPIPE would end this test program.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  struct sigaction before {};
  REQUIRE(::sigaction(SIGPIPE, &default_action, &before) == 0);

  style.gnuplot_command = "false";  // exits at once without reading
  std::string message = message_of<GnuplotFailed>([&] { write_heatmap_grid_png(big, png.string(), style); });
  CHECK(message.find("exit status 1") != std::string::npos);
  CHECK(message.find("stopped reading its input before all commands and data were sent") != std::string::npos);
  CHECK((sigpipe_handler() == SIG_DFL));  // restored

  // With a handler installed: not called (the signal is blocked in this thread and discarded), and
  // still installed afterwards.
  struct sigaction mine {};
  mine.sa_handler = count_signal;
  sigemptyset(&mine.sa_mask);
  REQUIRE(::sigaction(SIGPIPE, &mine, nullptr) == 0);
  signals_counted = 0;
  style.gnuplot_command = "true";  // exits with status 0 without reading
  message = message_of<GnuplotFailed>([&] { write_heatmap_grid_png(big, png.string(), style); });
  CHECK(message.find("wrote no file") != std::string::npos);
  CHECK(message.find("stopped reading its input") != std::string::npos);
  CHECK(signals_counted == 0);
  CHECK((sigpipe_handler() == count_signal));
  CHECK(files_in(dir).empty());

  REQUIRE(::sigaction(SIGPIPE, &before, nullptr) == 0);
  CHECK((sigpipe_handler() == before.sa_handler));
}

namespace {

bool sigpipe_blocked_in_this_thread() {
  sigset_t mask;
  sigemptyset(&mask);
  ::pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  return sigismember(&mask, SIGPIPE) == 1;
}

bool sigpipe_pending() {
  sigset_t pending;
  sigemptyset(&pending);
  ::sigpending(&pending);
  return sigismember(&pending, SIGPIPE) == 1;
}

// Runs `true` (exits without reading) as gnuplot and sends it 4 MiB, more than a pipe holds, so a
// write fails with EPIPE. Records what the process's SIGPIPE state is while the data are sent.
struct SigpipeDuringSend {
  bool handler_kept = false;
  bool blocked = false;
  std::string message;
};
SigpipeDuringSend send_to_a_gnuplot_that_exits(const fs::path& dir) {
  SigpipeDuringSend seen;
  const detail::TemporaryDirectory work;
  seen.message = message_of<GnuplotFailed>([&] {
    detail::run_gnuplot(
        "true", work.file("figure.png"), (dir / "never.png").string(), work,
        [&](gnuplotio::Gnuplot& gp) {
          seen.handler_kept = sigpipe_handler() == count_signal;
          seen.blocked = sigpipe_blocked_in_this_thread();
          const std::string chunk(1 << 20, '#');
          for (int i = 0; i < 4; ++i) gp << chunk;
        },
        [](const std::string&, const std::string&) {});
  });
  return seen;
}

}  // namespace

TEST_CASE("plotting blocks SIGPIPE in the writing thread only: the process's disposition is never changed") {
  const fs::path dir = output_dir("sigpipe_thread");
  struct sigaction mine {};
  mine.sa_handler = count_signal;
  sigemptyset(&mine.sa_mask);
  struct sigaction before {};
  REQUIRE(::sigaction(SIGPIPE, &mine, &before) == 0);
  REQUIRE_FALSE(sigpipe_blocked_in_this_thread());
  signals_counted = 0;

  // The program's handler stays installed while the data are sent (other threads, and children
  // started meanwhile, keep the usual SIGPIPE); this thread has it blocked, and the SIGPIPE raised
  // by the failed write is discarded, not delivered, before the mask is restored.
  SigpipeDuringSend seen = send_to_a_gnuplot_that_exits(dir);
  CHECK(seen.message.find("stopped reading its input") != std::string::npos);
  CHECK(seen.handler_kept);
  CHECK(seen.blocked);
  CHECK(signals_counted == 0);
  CHECK_FALSE(sigpipe_blocked_in_this_thread());
  CHECK_FALSE(sigpipe_pending());

  // A SIGPIPE the caller had blocked and pending before the call is not taken by the plot call.
  sigset_t only_sigpipe;
  sigemptyset(&only_sigpipe);
  sigaddset(&only_sigpipe, SIGPIPE);
  sigset_t old_mask;
  REQUIRE(::pthread_sigmask(SIG_BLOCK, &only_sigpipe, &old_mask) == 0);
  REQUIRE(::pthread_kill(::pthread_self(), SIGPIPE) == 0);
  REQUIRE(sigpipe_pending());
  seen = send_to_a_gnuplot_that_exits(dir);
  CHECK(seen.message.find("stopped reading its input") != std::string::npos);
  CHECK(seen.blocked);
  CHECK(sigpipe_blocked_in_this_thread());  // the caller's mask, as it was
  CHECK(sigpipe_pending());
  const timespec no_wait{0, 0};
  CHECK(::sigtimedwait(&only_sigpipe, nullptr, &no_wait) == SIGPIPE);
  REQUIRE(::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr) == 0);
  CHECK(signals_counted == 0);
  CHECK(fs::is_empty(dir));

  REQUIRE(::sigaction(SIGPIPE, &before, nullptr) == 0);
}

// ------------------------------------------------------------------------------------------------
// (c) Missing and failing gnuplot

TEST_CASE("a missing gnuplot throws GnuplotUnavailable naming the command and the output") {
  const fs::path dir = output_dir("missing");
  PlotStyle style;
  style.gnuplot_command = "/nonexistent/gnuplot";
  const std::string png = (dir / "never.png").string();
  const std::string message =
      message_of<GnuplotUnavailable>([&] { write_heatmap_grid_png(small_weights_grid(), png, style); });
  CHECK(message.find("'/nonexistent/gnuplot'") != std::string::npos);
  CHECK(message.find(png) != std::string::npos);
  CHECK(message_of<GnuplotUnavailable>([&] {
          write_curves_png(small_curves(), png, style);
        }).find("/nonexistent/gnuplot") != std::string::npos);
  // Not detectable from the first word: the shell's "not found" status is mapped as well.
  style.gnuplot_command = "( /nonexistent/gnuplot )";
  CHECK(message_of<GnuplotUnavailable>([&] {
          write_curves_png(small_curves(), png, style);
        }).find("shell exit status 127") != std::string::npos);
  CHECK(files_in(dir).empty());
}

TEST_CASE("a failing gnuplot throws GnuplotFailed and leaves no PNG behind") {
  const fs::path dir = output_dir("failing");
  const fs::path png = dir / "out.png";
  PlotStyle style;

  style.gnuplot_command = "false";
  std::string message =
      message_of<GnuplotFailed>([&] { write_heatmap_grid_png(small_weights_grid(), png.string(), style); });
  CHECK(message.find("'false'") != std::string::npos);
  CHECK(message.find("exit status 1") != std::string::npos);
  CHECK(message.find(png.string()) != std::string::npos);

  style.gnuplot_command = "sh -c 'cat >/dev/null; echo broken >&2; exit 3'";
  message = message_of<GnuplotFailed>([&] { write_curves_png(small_curves(), png.string(), style); });
  CHECK(message.find("exit status 3") != std::string::npos);
  CHECK(message.find("broken") != std::string::npos);  // the command's error output is included

  style.gnuplot_command = "cat >/dev/null";  // exits 0 but draws nothing
  message = message_of<GnuplotFailed>([&] { write_curves_png(small_curves(), png.string(), style); });
  CHECK(message.find("wrote no file") != std::string::npos);
  CHECK(files_in(dir).empty());

  {
    // The command line is run by a shell in a subshell: a syntax error or a signal still ends with
    // an exit status, and gnuplot-iostream has no pclose error to print.
    const CaptureCerr cerr;
    style.gnuplot_command = "cat >/dev/null; ( echo unbalanced";
    message = message_of<GnuplotFailed>([&] { write_curves_png(small_curves(), png.string(), style); });
    CHECK(message.find("exit status 2") != std::string::npos);
    CHECK(message.find("rror") != std::string::npos);  // the shell's "Syntax error" / "syntax error"
    style.gnuplot_command = "cat >/dev/null; sh -c 'kill -9 $$'";
    message = message_of<GnuplotFailed>([&] { write_curves_png(small_curves(), png.string(), style); });
    CHECK(message.find("exit status 137 (137 = 128 + 9: the shell's status for a program killed by signal 9)") !=
          std::string::npos);
    style.gnuplot_command = "cat >/dev/null; exit 5 # a comment";
    message = message_of<GnuplotFailed>([&] { write_curves_png(small_curves(), png.string(), style); });
    CHECK(message.find("exit status 5;") != std::string::npos);
    CHECK(cerr.text().empty());
  }
  CHECK(files_in(dir).empty());

  // A failed plot does not touch an existing figure.
  write_file(png, "previous figure");
  style.gnuplot_command = "false";
  CHECK_THROWS_AS(write_heatmap_grid_png(small_weights_grid(), png.string(), style), GnuplotFailed);
  CHECK(read_file(png) == "previous figure");
  CHECK(files_in(dir) == std::vector<std::string>{"out.png"});

  // A command that writes junk to the output named by the script, then fails or claims success:
  // the partial file must be removed either way.
  const fs::path fake = dir.parent_path() / "fake-gnuplot.sh";
  write_file(fake, "#!/bin/sh\nout=$(sed -n \"s/^set output '\\(.*\\)'$/\\1/p\")\necho junk > \"$out\"\nexit \"$1\"\n");
  fs::permissions(fake, fs::perms::owner_all);
  fs::remove(png);
  style.gnuplot_command = "'" + fake.string() + "' 4";
  message = message_of<GnuplotFailed>([&] { write_curves_png(small_curves(), png.string(), style); });
  CHECK(message.find("exit status 4") != std::string::npos);
  CHECK(files_in(dir).empty());
  style.gnuplot_command = "'" + fake.string() + "' 0";
  message = message_of<GnuplotFailed>([&] { write_heatmap_grid_png(small_weights_grid(), png.string(), style); });
  CHECK(message.find("wrote an invalid PNG") != std::string::npos);
  CHECK(files_in(dir).empty());

  if (!have_gnuplot()) return;
  // A gnuplot error after the PNG was complete: the PNG is still not kept.
  style.gnuplot_command = "{ cat; echo no_such_command; } | gnuplot";
  message = message_of<GnuplotFailed>([&] { write_heatmap_grid_png(small_weights_grid(), png.string(), style); });
  CHECK(message.find("no_such_command") != std::string::npos);
  CHECK(files_in(dir).empty());

  // A gnuplot error: its message reaches the exception, and no partial PNG is left.
  fs::remove(png);
  style.gnuplot_command = "gnuplot -e 'set no_such_option'";
  message = message_of<GnuplotFailed>([&] { write_heatmap_grid_png(small_weights_grid(), png.string(), style); });
  std::transform(message.begin(), message.end(), message.begin(), [](unsigned char ch) { return std::tolower(ch); });
  CHECK(message.find("unrecognized option") != std::string::npos);  // gnuplot's own error text
  CHECK(files_in(dir).empty());
}

// ------------------------------------------------------------------------------------------------
// (d) GNUPLOT_IOSTREAM_CMD

TEST_CASE("GNUPLOT_IOSTREAM_CMD chooses the default command and PlotStyle overrides it") {
  {
    const ScopedEnv unset("GNUPLOT_IOSTREAM_CMD", std::nullopt);
    CHECK(default_gnuplot_command() == "gnuplot");
  }
  {
    const ScopedEnv empty("GNUPLOT_IOSTREAM_CMD", std::string());
    CHECK(default_gnuplot_command() == "gnuplot");
  }

  const fs::path dir = output_dir("env");
  const fs::path png = dir / "out.png";
  {
    const ScopedEnv missing("GNUPLOT_IOSTREAM_CMD", std::string("/nonexistent/from-env-gnuplot"));
    CHECK(default_gnuplot_command() == "/nonexistent/from-env-gnuplot");
    CHECK(message_of<GnuplotUnavailable>([&] {
            write_curves_png(small_curves(), png.string());
          }).find("/nonexistent/from-env-gnuplot") != std::string::npos);
    if (have_gnuplot()) {
      PlotStyle style;
      style.gnuplot_command = "gnuplot";  // an explicit command wins over the environment
      write_curves_png(small_curves(), png.string(), style);
      check_png(png, curves_figure_size(small_curves()));
    }
  }

  // A wrapper that records its call, then runs gnuplot on the same standard input.
  const fs::path wrapper = dir / "gnuplot-wrapper.sh";
  const fs::path marker = dir / "wrapper-was-called";
  write_file(wrapper, "#!/bin/sh\necho called > '" + marker.string() + "'\nexec gnuplot \"$@\"\n");
  fs::permissions(wrapper, fs::perms::owner_all);
  fs::remove(png);
  const ScopedEnv wrapped("GNUPLOT_IOSTREAM_CMD", wrapper.string());
  if (have_gnuplot()) {
    write_heatmap_grid_png(small_weights_grid(), png.string());
    check_png(png, heatmap_grid_figure_size(small_weights_grid()));
  } else {
    CHECK_THROWS_AS(write_heatmap_grid_png(small_weights_grid(), png.string()), GnuplotUnavailable);  // exec fails: 127
  }
  CHECK(fs::exists(marker));
}
