// tinyattn/plot/gnuplot.hpp — headless PNG figures drawn by gnuplot: heatmap grids of attention
// patterns and training curves.
//
// The header takes plain data (no model headers). gnuplot is driven through gnuplot-iostream: a
// `Gnuplot` object (a pipe to the command) receives the gnuplot script with `<<`, each heatmap
// cell as inline binary data (`binFmt2d` + `sendBinary2d`) and each curve as inline text data
// (`send1d`). The limitations of that class are worked around:
//   * it drops gnuplot's exit status and output: the command line it is given wraps ours so that
//     the output goes to a log file and the exit status to a status file, both read after the
//     `Gnuplot` object is destroyed (its destructor pcloses, i.e. waits for gnuplot);
//   * a write to a gnuplot that died raises SIGPIPE: the signal is ignored while writing and the
//     stream's error state is checked instead; availability is checked with `command -v` first;
//   * an empty command means "gnuplot -persist": the command is always given (never -persist),
//     chosen as PlotStyle::gnuplot_command, else $GNUPLOT_IOSTREAM_CMD, else "gnuplot".
// gnuplot writes the PNG to a temporary name that is renamed into place only after the checks
// (exit status 0, PNG signature, expected size) pass. Standalone scripts for users (with a data
// file for heatmaps) are written as plain files by write_*_script_file*.
//
// POSIX only (Linux, macOS): popen via gnuplot-iostream, sigaction, mkdtemp, wait-status macros.
// Link tinyattn::plot (gnuplot-iostream + Boost.Iostreams).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ios>
#include <limits>
#include <mutex>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

// gnuplot-iostream (2014) compiles cleanly with -Wall -Wextra -Wpedantic under g++ 12 and clang 14
// with Boost 1.74, also when found outside the system include directories; these stricter
// warnings it would trigger are silenced for it alone.
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
#include <gnuplot-iostream.h>
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "tinyattn/core/config.hpp"

namespace tinyattn::plot {

// ---------------------------------------------------------------------------------------------
// Errors

// gnuplot cannot be started: the program is not found or not executable.
class GnuplotUnavailable : public Error {
 public:
  using Error::Error;
};

// gnuplot ran but failed: non-zero exit status, killed by a signal, or no valid PNG written.
class GnuplotFailed : public Error {
 public:
  using Error::Error;
};

// ---------------------------------------------------------------------------------------------
// Options

// How figures are drawn and which gnuplot runs them. Every field has a usable default.
struct PlotStyle {
  // Shell command that reads gnuplot commands on its standard input, e.g. "gnuplot" or
  // "/opt/gnuplot/bin/gnuplot". Empty: default_gnuplot_command() at the time of the call.
  std::string gnuplot_command;
  // Font of the pngcairo terminal ("<family>,<points>"); titles are drawn a little larger.
  std::string font = "Sans,10";
  // Side of one (square) heatmap cell in pixels.
  int cell_px = 220;
  // Size of one panel of the curves figure in pixels.
  int curves_panel_width_px = 560;
  int curves_height_px = 420;
};

// Width and height of a PNG image in pixels.
struct PngSize {
  int width = 0;
  int height = 0;
  friend bool operator==(const PngSize& a, const PngSize& b) {
    return a.width == b.width && a.height == b.height;
  }
  friend bool operator!=(const PngSize& a, const PngSize& b) { return !(a == b); }
};

// ---------------------------------------------------------------------------------------------
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

// Training curves. Accuracies are fractions in [0, 1] (drawn in %); losses are drawn on a log
// scale. Each series is either empty (not drawn) or has one entry per epoch; a NaN entry means
// "not measured at this epoch" and is left out, as are zero losses (not drawable on a log axis).
struct Curves {
  std::string title;  // figure title; empty: none
  std::vector<int> epoch;
  std::vector<double> train_acc, test_acc, train_loss, test_loss;
};

// ---------------------------------------------------------------------------------------------
// Implementation details

namespace detail {

inline const char* const yl_gn_bu_colors[9] = {"#ffffd9", "#edf8b1", "#c7e9b4", "#7fcdbb", "#41b6c4",
                                               "#1d91c0", "#225ea8", "#253494", "#081d58"};

// Layout of the heatmap figure in pixels. Fixed pixel margins (rather than fractions) keep every
// cell exactly cell_px square whatever the grid shape.
struct HeatmapLayout {
  static constexpr int left = 62;      // y tic labels + y label
  static constexpr int right = 118;    // colour bar, its tic labels and its label
  static constexpr int bottom = 52;    // x tic labels + x label
  static constexpr int top = 66;       // figure title + first row's cell titles
  static constexpr int col_gap = 16;   // no tic labels between columns
  static constexpr int row_gap = 34;   // room for the cell titles of the next row
  static constexpr int bar_offset = 22;  // colour bar distance from the last column
  static constexpr int bar_width = 18;
};

// A string inside gnuplot single quotes: no escapes are processed there (and, unlike double quotes,
// no `backquote` command substitution), a quote is written twice. A newline would end the command,
// so control characters become spaces.
inline std::string gnuplot_quote(const std::string& text) {
  std::string out = "'";
  for (char ch : text) {
    if (ch == '\'') {
      out += "''";
    } else if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {
      out += ' ';
    } else {
      out += ch;
    }
  }
  out += '\'';
  return out;
}

// A word for /bin/sh in single quotes ('\'' closes, escapes and reopens).
inline std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char ch : text) {
    if (ch == '\'') {
      out += "'\\''";
    } else {
      out += ch;
    }
  }
  out += '\'';
  return out;
}

// Paths are written into gnuplot scripts; a control character cannot be quoted there.
inline void require_plain_path(const std::string& path, const char* what) {
  require(!path.empty(), "tinyattn::plot: ", what, " is empty; expected a file path");
  for (char ch : path) {
    require(static_cast<unsigned char>(ch) >= 0x20 && ch != 0x7f, "tinyattn::plot: ", what, " '", path,
            "' contains a control character; expected a path gnuplot can quote");
  }
}

inline std::string absolute_path(const std::string& path) {
  return std::filesystem::absolute(std::filesystem::path(path)).lexically_normal().string();
}

inline void require_parent_directory(const std::string& path, const char* what) {
  const std::filesystem::path parent = std::filesystem::path(absolute_path(path)).parent_path();
  std::error_code ec;
  require(std::filesystem::is_directory(parent, ec), "tinyattn::plot: directory '", parent.string(), "' of ",
          what, " '", path, "' does not exist; expected an existing directory");
}

// Value with up to 9 significant digits, enough to round-trip a float.
inline std::string number(double value) {
  std::ostringstream out;
  out << std::setprecision(9) << value;
  return out.str();
}

inline std::string fraction(int pixels, int total) { return number(static_cast<double>(pixels) / total); }

// Smallest "round" tic step that gives at most 5 tics over 0..n-1 (0, 32, 64, 96 for n = 128).
inline int tic_step(int n) {
  static const int candidates[] = {1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100, 128, 200, 250, 256, 500, 512, 1000};
  for (int step : candidates) {
    if ((n - 1) / step + 1 <= 5) return step;
  }
  return std::max(1, (n - 1) / 4);
}

// The program a shell command line would run: its first word after VAR=value assignments, with
// quotes removed. Empty when the line starts with something else (a subshell, a brace group...).
inline std::string program_of(const std::string& command) {
  std::size_t i = 0;
  while (true) {
    while (i < command.size() && (command[i] == ' ' || command[i] == '\t')) ++i;
    std::string word;
    bool quoted = false;
    for (; i < command.size() && command[i] != ' ' && command[i] != '\t'; ++i) {
      const char ch = command[i];
      if (ch == '\'' || ch == '"') {
        if (word.find('=') == std::string::npos) quoted = true;  // 'A=1' is a word, A='1 2' an assignment
        const std::size_t end = command.find(ch, i + 1);
        if (end == std::string::npos) return {};
        word += command.substr(i + 1, end - i - 1);
        i = end;
      } else if (ch == '\\' && i + 1 < command.size()) {
        word += command[++i];
      } else if (std::strchr(";&|<>(){}\n", ch) != nullptr) {
        break;  // shell syntax ends the word ("gnuplot;..." runs gnuplot)
      } else {
        word += ch;
      }
    }
    const std::size_t eq = word.find('=');
    const bool assignment = !quoted && eq != std::string::npos && eq > 0 &&
                            std::all_of(word.begin(), word.begin() + static_cast<std::ptrdiff_t>(eq), [](char ch) {
                              return ch == '_' || std::isalnum(static_cast<unsigned char>(ch));
                            });
    if (!assignment) return word;
  }
}

// Last `max_chars` characters of a text file ("" when unreadable): gnuplot's error comes last.
inline std::string read_tail(const std::string& path, std::size_t max_chars = 4000) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > max_chars) text = "..." + text.substr(text.size() - max_chars);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.empty() ? std::string("(none)") : text;
}

inline void write_text_file(const std::string& path, const std::string& text, const char* what) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  require(static_cast<bool>(out), "tinyattn::plot: cannot open ", what, " '", path,
          "' for writing; expected a writable path");
  out << text;
  out.close();
  require(!out.fail(), "tinyattn::plot: writing ", what, " '", path, "' failed (disk full?)");
}

// A fresh directory under the system temporary directory, removed with its contents at scope exit.
class TemporaryDirectory {
 public:
  TemporaryDirectory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tinyattn-plot-XXXXXX").string();
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    require(::mkdtemp(buffer.data()) != nullptr, "tinyattn::plot: cannot create a temporary directory from '",
            pattern, "': ", std::strerror(errno));
    path_ = buffer.data();
  }
  ~TemporaryDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
  std::string file(const char* name) const { return (std::filesystem::path(path_) / name).string(); }

 private:
  std::string path_;
};

// Where gnuplot writes before the PNG is renamed into place: same directory (rename stays atomic),
// a name no other call uses, not created in advance so it gets ordinary permissions. Removed at
// scope exit unless it was renamed.
class PartialOutput {
 public:
  explicit PartialOutput(const std::string& final_path) {
    static std::atomic<unsigned> counter{0};
    const auto ticks = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = final_path + ".partial-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
            std::to_string(static_cast<unsigned long long>(ticks) % 1000000007ULL) + ".png";
  }
  ~PartialOutput() {
    if (!committed_) {
      std::error_code ignored;
      std::filesystem::remove(path_, ignored);
    }
  }
  PartialOutput(const PartialOutput&) = delete;
  PartialOutput& operator=(const PartialOutput&) = delete;
  const std::string& path() const { return path_; }
  void commit_to(const std::string& final_path) {
    std::error_code ec;
    std::filesystem::rename(path_, final_path, ec);
    require(!ec, "tinyattn::plot: cannot rename '", path_, "' to '", final_path, "': ", ec.message());
    committed_ = true;
  }

 private:
  std::string path_;
  bool committed_ = false;
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// gnuplot itself

// The command used when PlotStyle::gnuplot_command is empty: the environment variable
// GNUPLOT_IOSTREAM_CMD when set and non-empty (the gnuplot-iostream convention), else "gnuplot".
inline std::string default_gnuplot_command() {
  const char* from_env = std::getenv("GNUPLOT_IOSTREAM_CMD");
  return (from_env != nullptr && from_env[0] != '\0') ? std::string(from_env) : std::string("gnuplot");
}

// True when the program of `command` (its first word) is found by the shell's `command -v`.
// A command line that starts with something else (a subshell, a brace group) is assumed runnable.
inline bool gnuplot_available(const std::string& command = default_gnuplot_command()) {
  const std::string program = detail::program_of(command);
  if (program.empty()) {
    // A line that starts with shell syntax (a subshell, a brace group) cannot be checked here; the
    // run reports the shell's "not found" status 127 as GnuplotUnavailable instead. Blank: false.
    const std::size_t first = command.find_first_not_of(" \t");
    return first != std::string::npos && (command[first] == '(' || command[first] == '{');
  }
  const int status = std::system(("command -v " + detail::shell_quote(program) + " >/dev/null 2>&1").c_str());
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Reads the width and height from a PNG's IHDR chunk.
// requires: `path` is a PNG file. Throws tinyattn::Error naming the path otherwise.
inline PngSize read_png_size(const std::string& path) {
  static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::ifstream in(path, std::ios::binary);
  require(static_cast<bool>(in), "tinyattn::plot: cannot open PNG '", path, "'; expected an existing file");
  std::array<unsigned char, 24> head{};  // signature, IHDR length + type, width, height
  in.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(head.size()));
  require(in.gcount() == static_cast<std::streamsize>(head.size()), "tinyattn::plot: '", path, "' has only ",
          in.gcount(), " bytes; expected a PNG of at least 24 bytes");
  require(std::equal(signature, signature + 8, head.begin()), "tinyattn::plot: '", path,
          "' does not start with the PNG signature");
  require(std::memcmp(head.data() + 12, "IHDR", 4) == 0, "tinyattn::plot: '", path,
          "' has no IHDR chunk first; expected a valid PNG");
  auto big_endian_u32 = [&](std::size_t at) {
    return (std::uint32_t{head[at]} << 24) | (std::uint32_t{head[at + 1]} << 16) | (std::uint32_t{head[at + 2]} << 8) |
           std::uint32_t{head[at + 3]};
  };
  return PngSize{static_cast<int>(big_endian_u32(16)), static_cast<int>(big_endian_u32(20))};
}

namespace detail {

// SIGPIPE ignored from activate() until destruction, so that writing to a gnuplot that has exited
// fails with EPIPE, which sets the stream's badbit, instead of killing the process. The first of
// overlapping plot calls (other threads) saves the previous action and the last one restores it.
// The disposition is process-wide: while a plot call runs, another thread writing to a closed pipe
// gets EPIPE as well, and a child forked meanwhile starts with SIGPIPE ignored.
class SigpipeIgnored {
 public:
  SigpipeIgnored() = default;
  ~SigpipeIgnored() {
    if (!active_) return;
    const std::lock_guard<std::mutex> lock(state().mutex);
    if (--state().users == 0) ::sigaction(SIGPIPE, &state().previous, nullptr);
  }
  SigpipeIgnored(const SigpipeIgnored&) = delete;
  SigpipeIgnored& operator=(const SigpipeIgnored&) = delete;
  void activate() {
    const std::lock_guard<std::mutex> lock(state().mutex);
    if (state().users == 0) {
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      sigemptyset(&ignore.sa_mask);
      require(::sigaction(SIGPIPE, &ignore, &state().previous) == 0, "tinyattn::plot: cannot ignore SIGPIPE: ",
              std::strerror(errno));
    }
    ++state().users;
    active_ = true;
  }

 private:
  struct State {
    std::mutex mutex;
    int users = 0;
    struct sigaction previous {};
  };
  static State& state() {
    static State shared;
    return shared;
  }
  bool active_ = false;
};

// The line given to gnuplot-iostream's `Gnuplot` (which passes it to popen): runs `command` with
// the pipe as its standard input, its output and errors in `log_path`, then writes its exit status
// to `status_path`. `exec` first so that even the shell's own complaints land in the log; `eval` in
// a subshell so that a syntax error, an `exit` or a trailing comment in `command` still ends with a
// status written (2 for a syntax error) and the popen shell itself exits 0.
inline std::string wrapped_command(const std::string& command, const std::string& log_path,
                                   const std::string& status_path) {
  return "exec > " + shell_quote(log_path) + " 2>&1\n( eval " + shell_quote(command) + "\n)\necho $? > " +
         shell_quote(status_path) + "\n";
}

// The exit status recorded by wrapped_command, or nullopt when none was written.
inline std::optional<int> read_status(const std::string& path) {
  std::ifstream in(path);
  int status = -1;
  if (!(in >> status) || status < 0 || status > 255) return std::nullopt;
  return status;
}

// Starts `command` through gnuplot-iostream's `Gnuplot`, lets `send(gp)` write the script and its
// data, closes the pipe (waiting for gnuplot) and checks exit status and PNG: `partial_png_path`
// must then hold an `expected_size` PNG. `final_png_path` only names the figure in messages (to
// reproduce a failure by hand, save the script with write_*_script_file*). The log and status
// files go to `work`. Throws GnuplotUnavailable / GnuplotFailed.
// The same for any output file: `check(partial_path, where)` judges the file gnuplot wrote (throws
// GnuplotFailed when it is not what was asked for).
template <class Send, class Check>
void run_gnuplot_checked(const std::string& command, const std::string& partial_png_path,
                         const std::string& final_png_path, const TemporaryDirectory& work, Send&& send,
                         Check&& check) {
  if (!gnuplot_available(command)) {
    throw GnuplotUnavailable("tinyattn::plot: cannot draw '" + final_png_path + "': gnuplot command '" + command +
                             "' is not runnable (program '" + program_of(command) +
                             "' not found by 'command -v'); expected gnuplot 5 with the pngcairo terminal on PATH, "
                             "or a working command in GNUPLOT_IOSTREAM_CMD or PlotStyle::gnuplot_command");
  }
  const std::string log_path = work.file("gnuplot.log");
  const std::string status_path = work.file("gnuplot.status");
  const auto where = [&] { return "gnuplot command '" + command + "' drawing '" + final_png_path + "'"; };
  bool input_lost = false;  // gnuplot stopped reading before everything was sent
  {
    SigpipeIgnored sigpipe;  // declared first: restored only after the pipe is closed
    std::optional<gnuplotio::Gnuplot> gp;
    try {
      gp.emplace(wrapped_command(command, log_path, status_path));
    } catch (const std::ios_base::failure& e) {  // popen failed: no shell could be started
      throw GnuplotUnavailable("tinyattn::plot: cannot start a shell for " + where() + ": " + e.what() + " (" +
                               std::strerror(errno) + ")");
    }
    sigpipe.activate();  // after popen, so the shell and gnuplot start with the usual SIGPIPE
    send(*gp);
    gp->flush();
    input_lost = gp->bad();
    gp.reset();  // Gnuplot's destructor pcloses: gnuplot has exited and the status file is written
  }
  const std::string lost =
      input_lost ? "; it stopped reading its input before all commands and data were sent" : "";
  const std::optional<int> status = read_status(status_path);
  if (!status) {
    throw GnuplotFailed("tinyattn::plot: " + where() + " ended without recording an exit status" + lost +
                        "; shell output: " + read_tail(log_path));
  }
  if (*status == 126 || *status == 127) {  // the shell's "not executable" / "not found"
    throw GnuplotUnavailable("tinyattn::plot: " + where() + " could not be started (shell exit status " +
                             std::to_string(*status) + "); expected a runnable gnuplot; shell output: " +
                             read_tail(log_path));
  }
  if (*status != 0) {
    const std::string signal =
        *status > 128 ? " (" + std::to_string(*status) + " = 128 + " + std::to_string(*status - 128) +
                            ": the shell's status for a program killed by signal " + std::to_string(*status - 128) + ")"
                      : std::string();
    throw GnuplotFailed("tinyattn::plot: " + where() + " failed with exit status " + std::to_string(*status) +
                        signal + "; expected 0" + lost + "; gnuplot output: " + read_tail(log_path));
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(partial_png_path, ec)) {
    throw GnuplotFailed("tinyattn::plot: " + where() + " exited with status 0 but wrote no file (expected '" +
                        partial_png_path + "')" + lost + "; gnuplot output: " + read_tail(log_path));
  }
  if (input_lost) {
    throw GnuplotFailed("tinyattn::plot: " + where() + " exited with status 0" + lost +
                        ", so the file may be incomplete; gnuplot output: " + read_tail(log_path));
  }
  check(partial_png_path, where());
}

template <class Send>
void run_gnuplot(const std::string& command, const std::string& partial_png_path, const std::string& final_png_path,
                 PngSize expected_size, const TemporaryDirectory& work, Send&& send) {
  run_gnuplot_checked(command, partial_png_path, final_png_path, work, std::forward<Send>(send),
                      [&](const std::string& path, const std::string& where) {
                        PngSize found;
                        try {
                          found = read_png_size(path);
                        } catch (const Error& e) {
                          throw GnuplotFailed("tinyattn::plot: " + where + " wrote an invalid PNG: " + e.what());
                        }
                        if (found != expected_size) {
                          throw GnuplotFailed("tinyattn::plot: " + where + " wrote a " + std::to_string(found.width) +
                                              "x" + std::to_string(found.height) + " PNG; expected " +
                                              std::to_string(expected_size.width) + "x" +
                                              std::to_string(expected_size.height));
                        }
                      });
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Heatmap grids

// Checks everything the script relies on. Throws tinyattn::Error saying what is wrong.
inline void validate(const HeatmapGrid& grid) {
  require(grid.rows >= 1 && grid.cols >= 1 && grid.ny >= 1 && grid.nx >= 1,
          "tinyattn::plot: heatmap grid '", grid.title, "' has shape (rows, cols, ny, nx) = (", grid.rows, ", ",
          grid.cols, ", ", grid.ny, ", ", grid.nx, "); expected every extent >= 1");
  const std::size_t expected = static_cast<std::size_t>(grid.rows) * static_cast<std::size_t>(grid.cols) *
                               static_cast<std::size_t>(grid.ny) * static_cast<std::size_t>(grid.nx);
  require(grid.values.size() == expected, "tinyattn::plot: heatmap grid '", grid.title, "' has ",
          grid.values.size(), " values; expected rows*cols*ny*nx = ", expected);
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
              cell / static_cast<std::size_t>(grid.cols), ", col ", cell % static_cast<std::size_t>(grid.cols),
              ", y ", y, ", x ", x, ") is ", grid.values[i], "; expected a finite number");
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
  require(grid.rows >= 1 && grid.cols >= 1, "tinyattn::plot: heatmap grid '", grid.title, "' has ", grid.rows,
          "x", grid.cols, " cells; expected at least 1x1");
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
  std::ofstream out(data_path, std::ios::binary | std::ios::trunc);
  require(static_cast<bool>(out), "tinyattn::plot: cannot open heatmap data file '", data_path,
          "' for writing; expected a writable path");
  static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559, "float32 data expected");
  std::vector<unsigned char> bytes(grid.values.size() * 4);
  for (std::size_t i = 0; i < grid.values.size(); ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, &grid.values[i], 4);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + static_cast<std::size_t>(b)] = static_cast<unsigned char>(bits >> (8 * b));
  }
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  require(!out.fail(), "tinyattn::plot: writing heatmap data file '", data_path, "' failed (disk full?)");
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
    << "set multiplot layout " << grid.rows << "," << grid.cols << " rowsfirst title "
    << gnuplot_quote(grid.title) << " noenhanced font ',13' margins " << fraction(L::left, size.width) << ","
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
    const std::size_t offset = (static_cast<std::size_t>(r) * static_cast<std::size_t>(grid.cols) +
                                static_cast<std::size_t>(c)) * cell_values * 4;
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
  detail::write_text_file(script_path, heatmap_grid_script(grid, detail::absolute_path(png_path), data.string(), style),
                          "gnuplot script");
  return data.string();
}

// Draws `grid` into `png_path` by sending the script and the data to gnuplot through
// gnuplot-iostream. gnuplot writes a temporary file next to `png_path`, which is checked (exit
// status 0, PNG signature, expected size) and then renamed over `png_path`, so a failed plot
// never leaves a partial PNG. Throws GnuplotUnavailable, GnuplotFailed, or tinyattn::Error for a
// bad grid or path. ensures: on return, `png_path` is a PNG of heatmap_grid_figure_size(grid, style).
inline void write_heatmap_grid_png(const HeatmapGrid& grid, const std::string& png_path, const PlotStyle& style = {}) {
  validate(grid);
  detail::require_plain_path(png_path, "PNG path");
  detail::require_parent_directory(png_path, "PNG path");
  const PngSize size = heatmap_grid_figure_size(grid, style);
  const std::string final_png = detail::absolute_path(png_path);
  const std::string command = style.gnuplot_command.empty() ? default_gnuplot_command() : style.gnuplot_command;
  const detail::TemporaryDirectory work;
  detail::PartialOutput partial(final_png);
  detail::run_gnuplot(command, partial.path(), final_png, size, work,
                      [&](gnuplotio::Gnuplot& gp) { detail::send_heatmap_grid(gp, grid, partial.path(), style); });
  partial.commit_to(final_png);
}

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
  grid.values.assign(static_cast<std::size_t>(heads) * 3 * static_cast<std::size_t>(n) * static_cast<std::size_t>(n), 0.0f);
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

// ---------------------------------------------------------------------------------------------
// Training curves

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
    require(values->size() == curves.epoch.size(), "tinyattn::plot: curves '", curves.title, "' series ", name,
            " has ", values->size(), " values; expected 0 or one per epoch (", curves.epoch.size(), ")");
    const bool accuracy = std::strstr(name, "acc") != nullptr;
    for (std::size_t i = 0; i < values->size(); ++i) {
      const double v = (*values)[i];
      const bool ok = std::isnan(v) || (accuracy ? (v >= 0.0 && v <= 1.0) : (std::isfinite(v) && v >= 0.0));
      require(ok, "tinyattn::plot: curves '", curves.title, "' ", name, "[", i, "] (epoch ", curves.epoch[i],
              ") is ", v, "; expected ", accuracy ? "a fraction in [0, 1]" : "a finite loss >= 0", " or NaN (missing)");
    }
  }
  require(any, "tinyattn::plot: curves '", curves.title, "' have no series; expected at least one of train_acc, ",
          "test_acc, train_loss, test_loss");
}

// Size of the curves PNG: one panel for accuracies and one for losses, side by side (a panel whose
// two series are both empty is left out).
inline PngSize curves_figure_size(const Curves& curves, const PlotStyle& style = {}) {
  require(style.curves_panel_width_px >= 100 && style.curves_panel_width_px <= 8000 &&
              style.curves_height_px >= 100 && style.curves_height_px <= 8000,
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
  s << "set multiplot layout 1," << ((accuracy_panel && loss_panel) ? 2 : 1) << " title "
    << gnuplot_quote(curves.title) << " noenhanced font ',13'\n"
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
  detail::write_text_file(script_path, curves_script(curves, detail::absolute_path(png_path), style), "gnuplot script");
}

// Draws `curves` into `png_path` through gnuplot-iostream (the script with `gp << ...`, each curve
// with gp.send1d as '-' inline data), atomically as write_heatmap_grid_png does. Throws
// GnuplotUnavailable, GnuplotFailed, or tinyattn::Error for bad curves or path.
// ensures: on return, `png_path` is a PNG of curves_figure_size(curves, style).
inline void write_curves_png(const Curves& curves, const std::string& png_path, const PlotStyle& style = {}) {
  validate(curves);
  detail::require_plain_path(png_path, "PNG path");
  detail::require_parent_directory(png_path, "PNG path");
  const PngSize size = curves_figure_size(curves, style);
  const std::string final_png = detail::absolute_path(png_path);
  const std::string command = style.gnuplot_command.empty() ? default_gnuplot_command() : style.gnuplot_command;
  const detail::TemporaryDirectory work;
  detail::PartialOutput partial(final_png);
  detail::run_gnuplot(command, partial.path(), final_png, size, work, [&](gnuplotio::Gnuplot& gp) {
    detail::emit_curves_script(gp, curves, partial.path(), style, true,
                               [&](const detail::CurvePoints& points) { gp.send1d(points); });
  });
  partial.commit_to(final_png);
}

}  // namespace tinyattn::plot
