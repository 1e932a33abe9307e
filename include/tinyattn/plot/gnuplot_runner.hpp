// tinyattn/plot/gnuplot_runner.hpp — runs one gnuplot script and installs the file it draws.
//
// Every figure of tinyattn::plot (heatmap grids, curves, line charts, phase diagrams, animations)
// is drawn the same way: draw_file() starts gnuplot through gnuplot-iostream (a `Gnuplot` object,
// a pipe to the command), lets the figure send its script and data with `<<`, waits for gnuplot,
// checks what it wrote into a private temporary directory, and only then installs the file at its
// destination with io::write_file_atomically. A failed plot therefore never leaves a partial figure
// and keeps the one already there; a killed process leaves only what write_file_atomically
// documents (and the temporary directory).
// The limitations of gnuplot-iostream's `Gnuplot` are worked around:
//   * it drops gnuplot's exit status and output: the command line it is given wraps ours so that
//     the output goes to a log file and the exit status to a status file, both read after the
//     `Gnuplot` object is destroyed (its destructor pcloses, i.e. waits for gnuplot);
//   * a write to a gnuplot that died raises SIGPIPE: the signal is blocked in the writing thread
//     only (its signal mask, not the process's disposition), the write fails with EPIPE, the
//     stream's error state is checked, and the pending signal is discarded before the thread's
//     mask is restored; availability is checked with `command -v` first;
//   * an empty command means "gnuplot -persist": the command is always given (never -persist),
//     chosen as PlotStyle::gnuplot_command, else $GNUPLOT_IOSTREAM_CMD, else "gnuplot".
//
// POSIX only (Linux, macOS): popen via gnuplot-iostream, pthread_sigmask, mkdtemp, wait-status
// macros. Link tinyattn::plot (gnuplot-iostream + Boost.Iostreams).
#pragma once

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ios>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

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
#include "tinyattn/io/atomic_file.hpp"

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
  friend bool operator==(const PngSize& a, const PngSize& b) { return a.width == b.width && a.height == b.height; }
  friend bool operator!=(const PngSize& a, const PngSize& b) { return !(a == b); }
};

namespace detail {

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
  require(std::filesystem::is_directory(parent, ec), "tinyattn::plot: directory '", parent.string(), "' of ", what,
          " '", path, "' does not exist; expected an existing directory");
}

// Value with up to 9 significant digits, enough to round-trip a float.
inline std::string number(double value) {
  std::ostringstream out;
  out << std::setprecision(9) << value;
  return out.str();
}

inline std::string fraction(int pixels, int total) { return number(static_cast<double>(pixels) / total); }

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

// A fresh directory under the system temporary directory, removed with its contents at scope exit.
class TemporaryDirectory {
 public:
  TemporaryDirectory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tinyattn-plot-XXXXXX").string();
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    require(::mkdtemp(buffer.data()) != nullptr, "tinyattn::plot: cannot create a temporary directory from '", pattern,
            "': ", std::strerror(errno));
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

// SIGPIPE blocked for the calling thread from activate() until destruction, so that writing to a
// gnuplot that has exited fails with EPIPE, which sets the stream's badbit, instead of killing the
// process. Only this thread's signal mask changes: the process's SIGPIPE disposition (a handler
// the program installed, or the default action) stays as it is for every other thread. A SIGPIPE
// raised by our own writes is thread-directed, stays pending while blocked, and is discarded
// before the previous mask is restored. When SIGPIPE was already pending before activate() (the
// thread had it blocked), nothing is discarded: that signal is not ours to take.
class SigpipeBlockedInThisThread {
 public:
  SigpipeBlockedInThisThread() = default;
  ~SigpipeBlockedInThisThread() {
    if (!active_) return;
    if (!was_pending_ && pending()) {
      const sigset_t only_sigpipe = sigpipe_set();
      const timespec no_wait{0, 0};
      while (::sigtimedwait(&only_sigpipe, nullptr, &no_wait) < 0 && errno == EINTR) {
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
  }
  SigpipeBlockedInThisThread(const SigpipeBlockedInThisThread&) = delete;
  SigpipeBlockedInThisThread& operator=(const SigpipeBlockedInThisThread&) = delete;
  void activate() {
    was_pending_ = pending();
    const sigset_t only_sigpipe = sigpipe_set();
    const int error = ::pthread_sigmask(SIG_BLOCK, &only_sigpipe, &previous_mask_);
    require(error == 0, "tinyattn::plot: cannot block SIGPIPE in this thread: ", std::strerror(error));
    active_ = true;
  }

 private:
  static sigset_t sigpipe_set() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    return set;
  }
  static bool pending() {
    sigset_t set;
    sigemptyset(&set);
    return ::sigpending(&set) == 0 && sigismember(&set, SIGPIPE) == 1;
  }
  sigset_t previous_mask_{};
  bool was_pending_ = false;
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
// data, closes the pipe (waiting for gnuplot) and checks the exit status, then that `output_path`
// exists, then `check(output_path, where)` (throws GnuplotFailed when the file is not what was
// asked for). `figure_path` only names the figure in messages (to reproduce a failure by hand,
// save the script with write_*_script_file*). The log and status files go to `work`.
// Throws GnuplotUnavailable / GnuplotFailed.
template <class Send, class Check>
void run_gnuplot(const std::string& command, const std::string& output_path, const std::string& figure_path,
                 const TemporaryDirectory& work, Send&& send, Check&& check) {
  if (!gnuplot_available(command)) {
    throw GnuplotUnavailable("tinyattn::plot: cannot draw '" + figure_path + "': gnuplot command '" + command +
                             "' is not runnable (program '" + program_of(command) +
                             "' not found by 'command -v'); expected gnuplot 5 with the pngcairo terminal on PATH, "
                             "or a working command in GNUPLOT_IOSTREAM_CMD or PlotStyle::gnuplot_command");
  }
  const std::string log_path = work.file("gnuplot.log");
  const std::string status_path = work.file("gnuplot.status");
  const auto where = [&] { return "gnuplot command '" + command + "' drawing '" + figure_path + "'"; };
  bool input_lost = false;  // gnuplot stopped reading before everything was sent
  {
    SigpipeBlockedInThisThread sigpipe;  // declared first: unblocked only after the pipe is closed
    std::optional<gnuplotio::Gnuplot> gp;
    try {
      gp.emplace(wrapped_command(command, log_path, status_path));
    } catch (const std::ios_base::failure& e) {  // popen failed: no shell could be started
      throw GnuplotUnavailable("tinyattn::plot: cannot start a shell for " + where() + ": " + e.what() + " (" +
                               std::strerror(errno) + ")");
    }
    sigpipe.activate();  // after popen: the shell and gnuplot inherit the thread's usual mask
    send(*gp);
    gp->flush();
    input_lost = gp->bad();
    gp.reset();  // Gnuplot's destructor pcloses: gnuplot has exited and the status file is written
  }
  const std::string lost = input_lost ? "; it stopped reading its input before all commands and data were sent" : "";
  const std::optional<int> status = read_status(status_path);
  if (!status) {
    throw GnuplotFailed("tinyattn::plot: " + where() + " ended without recording an exit status" + lost +
                        "; shell output: " + read_tail(log_path));
  }
  if (*status == 126 || *status == 127) {  // the shell's "not executable" / "not found"
    throw GnuplotUnavailable("tinyattn::plot: " + where() + " could not be started (shell exit status " +
                             std::to_string(*status) +
                             "); expected a runnable gnuplot; shell output: " + read_tail(log_path));
  }
  if (*status != 0) {
    const std::string signal =
        *status > 128 ? " (" + std::to_string(*status) + " = 128 + " + std::to_string(*status - 128) +
                            ": the shell's status for a program killed by signal " + std::to_string(*status - 128) + ")"
                      : std::string();
    throw GnuplotFailed("tinyattn::plot: " + where() + " failed with exit status " + std::to_string(*status) + signal +
                        "; expected 0" + lost + "; gnuplot output: " + read_tail(log_path));
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(output_path, ec)) {
    throw GnuplotFailed("tinyattn::plot: " + where() + " exited with status 0 but wrote no file (expected '" +
                        output_path + "')" + lost + "; gnuplot output: " + read_tail(log_path));
  }
  if (input_lost) {
    throw GnuplotFailed("tinyattn::plot: " + where() + " exited with status 0" + lost +
                        ", so the file may be incomplete; gnuplot output: " + read_tail(log_path));
  }
  check(output_path, where());
}

// Draws one figure: `send(gp, output_path)` writes the script (which must set its output to
// `output_path`, a file in a private temporary directory) and its data; gnuplot is run and waited
// for as run_gnuplot does; `check(output_path, where)` judges the file (throws
// GnuplotFailed); then the file is installed at `path` with io::write_file_atomically. `what`
// names the path in messages ("PNG path"), `extension` is the output's (".png", ".gif").
// ensures: on return, `path` holds the checked file; on throw, `path` is as it was.
template <class Send, class Check>
void draw_file(const PlotStyle& style, const std::string& path, const char* what, const char* extension, Send&& send,
               Check&& check) {
  require_plain_path(path, what);
  require_parent_directory(path, what);
  const std::string final_path = absolute_path(path);
  const std::string command = style.gnuplot_command.empty() ? default_gnuplot_command() : style.gnuplot_command;
  const TemporaryDirectory work;
  const std::string output = work.file((std::string("figure") + extension).c_str());
  require_plain_path(output, "temporary output path");
  run_gnuplot(
      command, output, final_path, work, [&](gnuplotio::Gnuplot& gp) { send(gp, output); }, std::forward<Check>(check));
  io::write_file_atomically(final_path, io::read_file_bytes(output));
}

// draw_file for a PNG that must be `expected_size`.
template <class Send>
void draw_png(const PlotStyle& style, const std::string& png_path, PngSize expected_size, Send&& send) {
  draw_file(style, png_path, "PNG path", ".png", std::forward<Send>(send),
            [&](const std::string& path, const std::string& where) {
              PngSize found;
              try {
                found = read_png_size(path);
              } catch (const Error& e) {
                throw GnuplotFailed("tinyattn::plot: " + where + " wrote an invalid PNG: " + e.what());
              }
              if (found != expected_size) {
                throw GnuplotFailed("tinyattn::plot: " + where + " wrote a " + std::to_string(found.width) + "x" +
                                    std::to_string(found.height) + " PNG; expected " +
                                    std::to_string(expected_size.width) + "x" + std::to_string(expected_size.height));
              }
            });
}

}  // namespace detail
}  // namespace tinyattn::plot
