// examples/common/run_files.hpp — the files of a training run: its output directory, the per-epoch
// curves (curves.csv), and the figures' bookkeeping.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "tinyattn/io/atomic_file.hpp"
#include "tinyattn/plot/curves.hpp"
#include "tinyattn/train/trainer.hpp"

namespace programs {

// A run-time failure: I/O, a bad file, divergence (exit status 1).
class RunError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A number as printf's `format` writes it: %.17g reads back exactly (settings in metadata), %.9g is a
// float's precision (curves.csv, sweep.csv), %.6g reads well in reports.
inline std::string number_text(double value, const char* format = "%.17g") {
  char text[48];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

inline std::string join(const std::string& dir, const std::string& name) {
  return (std::filesystem::path(dir) / name).string();
}

// Creates `dir` (and its parents) when missing, then checks that files can be created there: before
// any training, so that a run never ends with nowhere to write.
inline void prepare_output_directory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw RunError("cannot create output directory '" + dir + "': " + ec.message());
  if (!std::filesystem::is_directory(dir, ec)) throw RunError("output path '" + dir + "' is not a directory");
  // access() says yes to root everywhere; creating a file is the real test.
  const std::string probe = join(dir, ".tinyattn-write-test." + std::to_string(getpid()));
  const int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) throw RunError("cannot write to output directory '" + dir + "': " + std::strerror(errno));
  close(fd);
  unlink(probe.c_str());
  tinyattn::io::remove_stale_temporary_files(dir);  // left by a run killed while writing
}

// One epoch of curves.csv; the test columns are NaN (written "nan") when the test set was not
// evaluated that epoch.
struct CurveRow {
  std::int64_t epoch;
  double train_loss, train_acc, test_loss, test_acc;
};

inline CurveRow curve_row(const tinyattn::EpochMetrics& m) {
  return {m.epoch, m.train_loss, m.train_accuracy, m.test_loss, m.test_accuracy};
}

inline constexpr const char* kCurvesHeader = "epoch,train_loss,train_acc,test_loss,test_acc";

inline void write_curves_csv(const std::string& path, const std::vector<CurveRow>& rows) {
  std::string text = std::string(kCurvesHeader) + "\n";
  char line[160];
  for (const CurveRow& r : rows) {
    std::snprintf(line, sizeof line, "%lld,%.9g,%.9g,%.9g,%.9g\n", static_cast<long long>(r.epoch), r.train_loss,
                  r.train_acc, r.test_loss, r.test_acc);
    text += line;
  }
  tinyattn::io::write_file_atomically(path, text);
}

inline std::vector<CurveRow> read_curves_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw RunError("cannot read '" + path + "': " + std::strerror(errno));
  std::string line;
  std::getline(in, line);
  if (line != kCurvesHeader) throw RunError(path + ": line 1 is '" + line + "', expected the header " + kCurvesHeader);
  std::vector<CurveRow> rows;
  for (int number = 2; std::getline(in, line); ++number) {
    CurveRow r{};
    long long epoch = 0;
    char tail = 0;
    if (std::sscanf(line.c_str(), "%lld,%lf,%lf,%lf,%lf%c", &epoch, &r.train_loss, &r.train_acc, &r.test_loss,
                    &r.test_acc, &tail) != 5 ||
        epoch != static_cast<long long>(rows.size()) + 1)
      throw RunError(path + ": line " + std::to_string(number) + " is '" + line + "', expected epoch " +
                     std::to_string(rows.size() + 1) + " and four numbers (nan for a test set not evaluated)");
    r.epoch = epoch;
    rows.push_back(r);
  }
  return rows;
}

// The training curves figure (curves.png). Returns false when gnuplot is missing.
inline bool write_curves_figure(const std::vector<CurveRow>& rows, const std::string& title, const std::string& dir,
                                std::vector<std::string>& files) {
  if (rows.empty()) return true;
  if (!tinyattn::plot::gnuplot_available()) return false;
  tinyattn::plot::Curves curves;
  curves.title = title;
  for (const CurveRow& r : rows) {
    curves.epoch.push_back(static_cast<int>(r.epoch));
    curves.train_acc.push_back(r.train_acc);
    curves.test_acc.push_back(r.test_acc);
    curves.train_loss.push_back(r.train_loss);
    curves.test_loss.push_back(r.test_loss);
  }
  tinyattn::plot::write_curves_png(curves, join(dir, "curves.png"));
  files.push_back("curves.png");
  return true;
}

inline void warn_no_gnuplot() {
  std::fprintf(stderr,
               "warning: gnuplot not found (tried '%s'; install gnuplot-nox or set GNUPLOT_IOSTREAM_CMD): "
               "figures skipped, all other files written\n",
               tinyattn::plot::default_gnuplot_command().c_str());
}

}  // namespace programs
