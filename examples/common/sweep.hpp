// examples/common/sweep.hpp — `PROGRAM sweep`: many runs of one experiment over seeds and
// hyper-parameters, trained together (tinyattn::Ensemble), spread over processes by mpirun.
//
//   minmax sweep --seeds 0-63 --weight-decay 0.1,0.3,1,3 --train-fraction 0.1,0.2,0.33 --lr 1e-3,2e-3 --out DIR
//   grokking sweep --seeds 0-3 --weight-decay 0.3,1,3 --train-fraction 0.2,0.3,0.5 --epochs 8000 --out DIR
//   mpirun -np 4 minmax sweep ...          the runs dealt over the ranks; rank 0 writes the results
//   minmax sweep --resume DIR              after a crash or a kill: the finished runs are kept
//
// Files in DIR:
//   sweep-spec.txt          the sweep's settings (what --resume reads)
//   runs/run-NNNNNN.csv     one finished run's row, written durably (atomically, fsynced) as it finishes
//   weights/run-NNNNNN.safetensors   with --keep-weights, written before the row
//   sweep.csv               every run's row in run order: settings, final metrics, the epoch test
//                           accuracy first reached the threshold, the task's mechanism summary
//   phase.csv, phase_test_accuracy.png, phase_epochs.png   over two axes, averaged over seeds
//   histogram_test_accuracy.png, histogram_epochs.png      over all runs
//
// Every file but the progress lines is the same for any number of ranks and threads: each run trains
// exactly as `PROGRAM train` with its settings would, whichever process and thread trains it.
//
// What a program tells the sweep about its experiment, S (examples/minmax/minmax_sweep.hpp,
// examples/grokking/grokking.cpp):
//   S::program                  "minmax"
//   S::Net                      the network type
//   S::samples                  the number of inputs the training fraction divides
//   S::defaults()               SweepSpec with the program's train defaults (lr, weight decay, fraction,
//                               epochs, eval_every)
//   S::member(run)              tinyattn::EnsembleMember: the run's training and test sets and AdamW as
//                               `PROGRAM train` makes them (the sweep sets the seed, lr, weight decay,
//                               eval_every and epochs)
//   S::mechanism_header()       ",name,..." the mechanism summary's columns
//   S::mechanism(net)           ",value,..." a trained run's summary
//   S::metadata(run, spec, epochs)  the metadata of a kept run's weights (what `PROGRAM eval` reads)
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <unistd.h>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "cli.hpp"
#include "ranks.hpp"
#include "run_files.hpp"
#include "tinyattn/backend/threads.hpp"
#include "tinyattn/io/atomic_file.hpp"
#include "tinyattn/io/weights.hpp"
#include "tinyattn/plot/line_chart.hpp"
#include "tinyattn/plot/phase_diagram.hpp"
#include "tinyattn/tinyattn.hpp"

namespace programs {

// ---- the specification -----------------------------------------------------------------------------
// The axes a sweep varies besides the seed, in the order of the run numbering (seed innermost).
enum class Axis { lr, weight_decay, train_fraction };
inline const char* axis_flag(Axis a) {
  return a == Axis::lr ? "lr" : a == Axis::weight_decay ? "weight-decay" : "train-fraction";
}
inline const char* axis_title(Axis a) {
  return a == Axis::lr ? "learning rate" : a == Axis::weight_decay ? "weight decay" : "training fraction";
}

struct SweepSpec {
  std::vector<std::uint64_t> seeds{0};
  std::vector<double> lr, weight_decay, train_fraction;  // the task's defaults (S::defaults())
  std::int64_t epochs = 1, eval_every = 1;
  double threshold = 0.99;
  Axis x_axis = Axis::weight_decay, y_axis = Axis::train_fraction;
  bool keep_weights = false;

  const std::vector<double>& values(Axis a) const {
    return a == Axis::lr ? lr : a == Axis::weight_decay ? weight_decay : train_fraction;
  }
  std::size_t runs() const { return seeds.size() * lr.size() * weight_decay.size() * train_fraction.size(); }
};

// One run's settings; run numbers go seed fastest, then train fraction, weight decay, learning rate.
// The seed is the run's initial weights (and, where the task's split follows the seed, its split).
struct SweepRun {
  std::size_t id;
  std::uint64_t seed;
  double lr, weight_decay, train_fraction;
};

inline std::vector<SweepRun> sweep_runs(const SweepSpec& s) {
  std::vector<SweepRun> runs;
  for (double lr : s.lr)
    for (double wd : s.weight_decay)
      for (double f : s.train_fraction)
        for (std::uint64_t seed : s.seeds) runs.push_back({runs.size(), seed, lr, wd, f});
  return runs;
}

inline std::string text_of(double value, const char* format = "%.9g") { return number_text(value, format); }

inline constexpr std::size_t kMaxRuns = 1'000'000;

// "0-63", "0,5,9-12": non-negative integers, ascending ranges, each value once.
inline std::vector<std::uint64_t> parse_seed_list(const std::string& text, const std::string& flag) {
  std::vector<std::uint64_t> seeds;
  std::stringstream items(text);
  std::string item;
  const std::int64_t top = std::numeric_limits<std::int64_t>::max();
  while (std::getline(items, item, ',')) {
    if (item.empty()) throw UsageError(flag + " has an empty item in '" + text + "'");
    const auto dash = item.find('-', 1);
    const std::int64_t first = Arguments::parse_integer(item.substr(0, dash), flag, 0, top);
    const std::int64_t last =
        dash == std::string::npos ? first : Arguments::parse_integer(item.substr(dash + 1), flag, 0, top);
    if (last < first) throw UsageError(flag + " range '" + item + "' is empty (the end is below the start)");
    if (static_cast<std::uint64_t>(last - first) >= kMaxRuns)
      throw UsageError(flag + " range '" + item + "' has more than " + std::to_string(kMaxRuns) + " values");
    for (std::int64_t s = first; s <= last; ++s) seeds.push_back(static_cast<std::uint64_t>(s));
  }
  if (seeds.empty()) throw UsageError(flag + " lists no value");
  std::vector<std::uint64_t> sorted = seeds;
  std::sort(sorted.begin(), sorted.end());
  if (const auto twice = std::adjacent_find(sorted.begin(), sorted.end()); twice != sorted.end())
    throw UsageError(flag + " lists " + std::to_string(*twice) + " twice");
  return seeds;
}

// "1e-3,2e-3": numbers in [min, max] (> min when min_exclusive, < max when max_exclusive), each once.
inline std::vector<double> parse_number_list(const std::string& text, const std::string& flag, double min, double max,
                                             bool min_exclusive, bool max_exclusive) {
  std::vector<double> values;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    if (item.empty()) throw UsageError(flag + " has an empty item in '" + text + "'");
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(item.c_str(), &end);
    if (end == item.c_str() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
      throw UsageError(flag + " expects numbers, found '" + item + "'");
    if (v < min || (min_exclusive && v == min) || v > max || (max_exclusive && v == max))
      throw UsageError(flag + " values must be " + (min_exclusive ? "> " : ">= ") + text_of(min, "%g") +
                       (max_exclusive ? " and < " : " and <= ") + text_of(max, "%g") + ", found " + item);
    if (std::find(values.begin(), values.end(), v) != values.end())
      throw UsageError(flag + " lists " + item + " twice");
    values.push_back(v);
  }
  if (values.empty()) throw UsageError(flag + " lists no value");
  return values;
}

inline Axis parse_axis(const std::string& name, const std::string& flag) {
  for (Axis a : {Axis::lr, Axis::weight_decay, Axis::train_fraction})
    if (name == axis_flag(a)) return a;
  throw UsageError(flag + ": unknown axis '" + name + "'; expected lr, weight-decay or train-fraction");
}

// The phase diagram's axes: --axes X,Y, else the first two of weight decay, training fraction and
// learning rate that the sweep varies (then the ones it does not).
inline void choose_axes(SweepSpec& s, const std::optional<std::string>& axes) {
  if (axes) {
    const auto comma = axes->find(',');
    if (comma == std::string::npos || axes->find(',', comma + 1) != std::string::npos)
      throw UsageError("--axes expects two axes X,Y (e.g. weight-decay,train-fraction), found '" + *axes + "'");
    s.x_axis = parse_axis(axes->substr(0, comma), "--axes");
    s.y_axis = parse_axis(axes->substr(comma + 1), "--axes");
    if (s.x_axis == s.y_axis) throw UsageError("--axes names " + axes->substr(0, comma) + " twice");
    return;
  }
  std::vector<Axis> order;
  for (bool varied : {true, false})
    for (Axis a : {Axis::weight_decay, Axis::train_fraction, Axis::lr})
      if ((s.values(a).size() > 1) == varied) order.push_back(a);
  s.x_axis = order[0], s.y_axis = order[1];
}

// Every training fraction must leave a sample to train and one to test, of `size` samples.
inline void check_fractions(const SweepSpec& s, double size) {
  for (double f : s.train_fraction) {
    const double cut = std::floor(size * f);
    if (cut < 1 || cut >= size)
      throw UsageError("--train-fraction " + text_of(f) + " leaves " + text_of(cut, "%.0f") + " of " +
                       text_of(size, "%.0f") + " samples to train; expected at least 1 and fewer than all");
  }
}

// The settings as sweep-spec.txt holds them: exact (%.17g), one key per line.
template <class S>
std::string spec_text(const SweepSpec& s) {
  auto list = [](const std::vector<double>& values) {
    std::string t;
    for (double v : values) t += (t.empty() ? "" : ",") + text_of(v, "%.17g");
    return t;
  };
  std::string seeds;
  for (std::uint64_t seed : s.seeds) seeds += (seeds.empty() ? "" : ",") + std::to_string(seed);
  return std::string("# ") + S::program + " sweep settings (read by " + S::program +
         " sweep --resume)\nseeds=" + seeds + "\nlr=" + list(s.lr) + "\nweight-decay=" + list(s.weight_decay) +
         "\ntrain-fraction=" + list(s.train_fraction) + "\nepochs=" + std::to_string(s.epochs) +
         "\neval-every=" + std::to_string(s.eval_every) + "\nthreshold=" + text_of(s.threshold, "%.17g") +
         "\naxes=" + axis_flag(s.x_axis) + "," + axis_flag(s.y_axis) +
         "\nkeep-weights=" + (s.keep_weights ? "1" : "0") + "\n";
}

// The flags of `PROGRAM sweep` that define a sweep (--resume takes them from sweep-spec.txt).
inline const std::set<std::string>& sweep_setting_flags() {
  static const std::set<std::string> flags{"--seeds",  "--lr",         "--weight-decay", "--train-fraction",
                                           "--epochs", "--eval-every", "--threshold",    "--axes"};
  return flags;
}

// Reads the settings from flag values (a missing flag keeps the task's default); throws UsageError.
template <class S>
SweepSpec parse_sweep_spec(const std::map<std::string, std::string>& values, bool keep_weights) {
  SweepSpec s = S::defaults();
  auto get = [&](const char* flag) -> std::optional<std::string> {
    const auto found = values.find(flag);
    if (found == values.end()) return std::nullopt;
    return found->second;
  };
  if (const auto v = get("--seeds")) s.seeds = parse_seed_list(*v, "--seeds");
  if (const auto v = get("--lr")) s.lr = parse_number_list(*v, "--lr", 0.0, 10.0, true, false);
  if (const auto v = get("--weight-decay"))
    s.weight_decay = parse_number_list(*v, "--weight-decay", 0.0, 1e6, false, false);
  if (const auto v = get("--train-fraction"))
    s.train_fraction = parse_number_list(*v, "--train-fraction", 0.0, 1.0, true, true);
  if (const auto v = get("--epochs")) s.epochs = Arguments::parse_integer(*v, "--epochs", 1, 100'000'000);
  if (const auto v = get("--eval-every")) s.eval_every = Arguments::parse_integer(*v, "--eval-every", 1, 100'000'000);
  if (const auto v = get("--threshold")) {
    const auto t = parse_number_list(*v, "--threshold", 0.0, 1.0, true, false);
    if (t.size() != 1) throw UsageError("--threshold takes one number, found '" + *v + "'");
    s.threshold = t[0];
  }
  // A row reports the last evaluated epoch's test numbers: they must be the last epoch's.
  if (s.epochs % s.eval_every != 0)
    throw UsageError("--epochs " + std::to_string(s.epochs) + " is not a multiple of --eval-every " +
                     std::to_string(s.eval_every) + ": the last epoch would not be evaluated; expected epochs = k * " +
                     std::to_string(s.eval_every));
  s.keep_weights = keep_weights;
  check_fractions(s, static_cast<double>(S::samples));
  choose_axes(s, get("--axes"));
  if (s.runs() > kMaxRuns)
    throw UsageError("the sweep has " + std::to_string(s.runs()) + " runs; at most " + std::to_string(kMaxRuns) +
                     " are allowed");
  return s;
}

template <class S>
SweepSpec read_sweep_spec(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw RunError("cannot read '" + path + "': " + std::strerror(errno) + " (is it a sweep's directory?)");
  std::map<std::string, std::string> values;
  bool keep_weights = false;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#') continue;
    const auto equals = line.find('=');
    const std::string key = equals == std::string::npos ? "" : "--" + line.substr(0, equals);
    if (key == "--keep-weights") {
      keep_weights = line.substr(equals + 1) == "1";
    } else if (!sweep_setting_flags().count(key)) {
      throw RunError(path + ": line " + std::to_string(number) + " is '" + line + "', expected key=value");
    } else {
      values[key] = line.substr(equals + 1);
    }
  }
  try {
    return parse_sweep_spec<S>(values, keep_weights);
  } catch (const UsageError& e) {
    throw RunError(path + ": " + e.what());
  }
}

// ---- one run's row ---------------------------------------------------------------------------------
template <class S>
std::string sweep_header(const SweepSpec& s) {
  return "run,seed,lr,weight_decay,train_fraction,status,epochs,train_loss,train_acc,test_loss,test_acc,epoch_to_" +
         text_of(100 * s.threshold, "%g") + "pct" + S::mechanism_header();
}

// The settings part of a row: what --resume checks a finished row against.
inline std::string row_settings(const SweepRun& r) {
  return std::to_string(r.id) + "," + std::to_string(r.seed) + "," + text_of(r.lr) + "," + text_of(r.weight_decay) +
         "," + text_of(r.train_fraction);
}

template <class S>
std::string sweep_row(const SweepRun& run, const tinyattn::MemberResult<>& r, const typename S::Net& net) {
  std::string row = row_settings(run) + (r.diverged ? ",diverged," : ",ok,") + std::to_string(r.last.epoch);
  if (r.last.epoch > 0)
    row += "," + text_of(r.last.train_loss) + "," + text_of(r.last.train_accuracy);
  else
    row += ",,";
  if (r.last_tested.epoch > 0)
    row += "," + text_of(r.last_tested.test_loss) + "," + text_of(r.last_tested.test_accuracy);
  else
    row += ",,";
  row += "," + (r.epoch_reached > 0 ? std::to_string(r.epoch_reached) : std::string());
  return row + S::mechanism(net);
}

inline std::string run_file_name(std::size_t id) {
  char name[40];
  std::snprintf(name, sizeof name, "run-%06zu", id);
  return name;
}

// The rows already finished in dir/runs, by run number; a row that does not match its run's settings
// (another sweep's file) is an error, not silently mixed in.
template <class S>
std::map<std::size_t, std::string> finished_rows(const std::string& dir, const SweepSpec& spec,
                                                 const std::vector<SweepRun>& runs) {
  std::map<std::size_t, std::string> rows;
  const std::string header = sweep_header<S>(spec);
  for (const SweepRun& run : runs) {
    const std::string path = join(join(dir, "runs"), run_file_name(run.id) + ".csv");
    std::ifstream in(path);
    if (!in) continue;
    std::string first, row;
    std::getline(in, first);
    std::getline(in, row);
    const std::string settings = row_settings(run) + ",";
    if (first != header || row.compare(0, settings.size(), settings) != 0)
      throw RunError(path +
                     " does not belong to this sweep: expected the header of sweep-spec.txt and a row "
                     "starting '" +
                     settings + "', found '" + row + "'");
    rows[run.id] = row;
  }
  return rows;
}

// ---- figures and tables over all rows --------------------------------------------------------------
struct RowNumbers {
  SweepRun run;
  bool diverged;
  double test_acc;  // NaN when never tested
  double reached;   // NaN when the threshold was never reached
};

inline RowNumbers row_numbers(const SweepRun& run, const std::string& row) {
  std::vector<std::string> fields;
  std::stringstream cells(row);
  for (std::string cell; std::getline(cells, cell, ',');) fields.push_back(cell);
  if (fields.size() < 12) throw RunError("a sweep row has " + std::to_string(fields.size()) + " fields: '" + row + "'");
  auto number = [](const std::string& t) { return t.empty() ? NAN : std::strtod(t.c_str(), nullptr); };
  return {run, fields[5] == "diverged", number(fields[10]), number(fields[11])};
}

inline std::size_t axis_index(const SweepSpec& s, Axis a, const SweepRun& r) {
  const double v = a == Axis::lr ? r.lr : a == Axis::weight_decay ? r.weight_decay : r.train_fraction;
  const auto& values = s.values(a);
  return static_cast<std::size_t>(std::find(values.begin(), values.end(), v) - values.begin());
}

// phase.csv and, when gnuplot is there, the phase diagrams and histograms. Returns false without gnuplot.
inline bool write_sweep_summaries(const SweepSpec& s, const std::vector<RowNumbers>& rows, const std::string& dir,
                                  bool plot, std::vector<std::string>& files) {
  const auto& xs = s.values(s.x_axis);
  const auto& ys = s.values(s.y_axis);
  const std::size_t cells = xs.size() * ys.size();
  std::vector<double> acc_sum(cells, 0), epoch_sum(cells, 0);
  std::vector<int> runs(cells, 0), tested(cells, 0), reached(cells, 0), diverged(cells, 0);
  for (const RowNumbers& r : rows) {
    const std::size_t c = axis_index(s, s.y_axis, r.run) * xs.size() + axis_index(s, s.x_axis, r.run);
    ++runs[c];
    diverged[c] += r.diverged;
    if (!std::isnan(r.test_acc)) acc_sum[c] += r.test_acc, ++tested[c];
    if (!std::isnan(r.reached)) epoch_sum[c] += r.reached, ++reached[c];
  }
  std::string csv = std::string(axis_flag(s.y_axis)) + "," + axis_flag(s.x_axis) +
                    ",runs,diverged,mean_test_acc,reached,mean_epoch_to_" + text_of(100 * s.threshold, "%g") + "pct\n";
  std::vector<double> mean_acc(cells, NAN), mean_epochs(cells, NAN);
  for (std::size_t y = 0; y < ys.size(); ++y)
    for (std::size_t x = 0; x < xs.size(); ++x) {
      const std::size_t c = y * xs.size() + x;
      if (tested[c]) mean_acc[c] = acc_sum[c] / tested[c];
      if (reached[c]) mean_epochs[c] = epoch_sum[c] / reached[c];
      csv += text_of(ys[y]) + "," + text_of(xs[x]) + "," + std::to_string(runs[c]) + "," + std::to_string(diverged[c]) +
             "," + (tested[c] ? text_of(mean_acc[c]) : "") + "," + std::to_string(reached[c]) + "," +
             (reached[c] ? text_of(mean_epochs[c]) : "") + "\n";
    }
  tinyattn::io::write_file_atomically(join(dir, "phase.csv"), csv);
  files.push_back("phase.csv");
  if (!plot) return true;
  if (!tinyattn::plot::gnuplot_available()) return false;

  const std::size_t per_cell = rows.size() / std::max<std::size_t>(cells, 1);
  tinyattn::plot::PhaseDiagram d;
  d.x_label = axis_title(s.x_axis), d.y_label = axis_title(s.y_axis);
  for (double v : xs) d.x_ticks.push_back(text_of(v, "%g"));
  for (double v : ys) d.y_ticks.push_back(text_of(v, "%g"));
  d.title = "final test accuracy, mean of " + std::to_string(per_cell) + " runs per cell";
  d.z_label = "test accuracy";
  d.values = mean_acc;
  tinyattn::plot::write_phase_diagram_png(d, join(dir, "phase_test_accuracy.png"));
  const std::string pct = text_of(100 * s.threshold, "%g");
  d.title = "first epoch with test accuracy >= " + pct + "% (mean; '-': no run)";
  d.z_label = "epoch";
  d.values = mean_epochs;
  d.cell_format = "%.0f";
  d.zmin = 0, d.zmax = static_cast<double>(s.epochs);
  tinyattn::plot::write_phase_diagram_png(d, join(dir, "phase_epochs.png"));
  files.insert(files.end(), {"phase_test_accuracy.png", "phase_epochs.png"});

  // Histograms over all runs: final test accuracy in 2 % bins, epochs to the threshold in 40 bins.
  auto histogram = [&](const std::string& title, const std::string& x_label, double low, double high, int bins,
                       auto value_of, const std::string& name) {
    tinyattn::plot::LineChart chart;
    chart.title = title, chart.x_label = x_label, chart.y_label = "runs";
    chart.bars = true;
    tinyattn::plot::LineSeries counts{"runs per bin", {}, {}};
    std::vector<double> count(static_cast<std::size_t>(bins), 0);
    for (const RowNumbers& r : rows) {
      const double v = value_of(r);
      if (std::isnan(v)) continue;
      const int bin = std::clamp(static_cast<int>((v - low) / (high - low) * bins), 0, bins - 1);
      ++count[static_cast<std::size_t>(bin)];
    }
    for (int b = 0; b < bins; ++b) {
      counts.x.push_back(low + (b + 0.5) * (high - low) / bins);
      counts.y.push_back(count[static_cast<std::size_t>(b)]);
    }
    chart.series.push_back(counts);
    tinyattn::plot::write_line_chart_png(chart, join(dir, name));
    files.push_back(name);
  };
  histogram(
      "final test accuracy of " + std::to_string(rows.size()) + " runs", "test accuracy", 0.0, 1.0, 50,
      [](const RowNumbers& r) { return r.test_acc; }, "histogram_test_accuracy.png");
  histogram(
      "epoch test accuracy first reached " + pct + "% (runs that did)", "epoch", 0.0, static_cast<double>(s.epochs), 40,
      [](const RowNumbers& r) { return r.reached; }, "histogram_epochs.png");
  return true;
}

// ---- progress over runs ----------------------------------------------------------------------------
class RunProgress {
 public:
  RunProgress(std::size_t total, const Ranks& ranks) : total_(total), ranks_(ranks) {}
  void finished(const SweepRun& run, const tinyattn::MemberResult<>& r, double threshold) {
    ++done_;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    constexpr int kWidth = 20;
    std::string bar(static_cast<std::size_t>(total_ ? kWidth * done_ / total_ : kWidth), '#');
    bar.resize(kWidth, '.');
    const double eta = done_ ? elapsed / done_ * (total_ - done_) : 0.0;
    std::string rank = ranks_.size() > 1 ? "rank " + std::to_string(ranks_.rank()) + ": " : "";
    std::string outcome = r.diverged ? "diverged at epoch " + std::to_string(r.last.epoch + 1)
                                     : "test " + text_of(100 * r.last_tested.test_accuracy, "%.2f") + "%";
    if (r.epoch_reached > 0)
      outcome += " (" + text_of(100 * threshold, "%g") + "% at epoch " + std::to_string(r.epoch_reached) + ")";
    std::printf("%s[%s] %zu/%zu runs, ETA %.0f s | run %zu: seed %llu lr %g wd %g fraction %g -> %s\n", rank.c_str(),
                bar.c_str(), done_, total_, eta, run.id, static_cast<unsigned long long>(run.seed), run.lr,
                run.weight_decay, run.train_fraction, outcome.c_str());
    std::fflush(stdout);
  }

 private:
  std::size_t total_, done_ = 0;
  const Ranks& ranks_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// ---- Ctrl-C ----------------------------------------------------------------------------------------
// SIGINT or SIGTERM during a sweep: the finished runs are on disk already (each row is written as its
// run ends), so the process says how to continue and then ends as the signal's default action would
// (the shell and mpirun see the signal). The message is made before the handler is installed: the
// handler itself only calls async-signal-safe functions. A signal the process ignores (a background
// job's SIGINT) stays ignored.
class SweepInterruptNotice {
 public:
  explicit SweepInterruptNotice(const std::string& text) {
    std::snprintf(message(), kSize, "%s", text.c_str());
    struct sigaction action {};
    action.sa_handler = &SweepInterruptNotice::on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;
    for (int i = 0; i < 2; ++i) {
      ::sigaction(kSignals[i], nullptr, &previous_[i]);
      if (previous_[i].sa_handler != SIG_IGN) ::sigaction(kSignals[i], &action, nullptr);
    }
  }
  ~SweepInterruptNotice() {
    for (int i = 0; i < 2; ++i) ::sigaction(kSignals[i], &previous_[i], nullptr);
  }
  SweepInterruptNotice(const SweepInterruptNotice&) = delete;
  SweepInterruptNotice& operator=(const SweepInterruptNotice&) = delete;

 private:
  static constexpr std::size_t kSize = 4096;
  static constexpr int kSignals[2] = {SIGINT, SIGTERM};
  static char* message() {
    static char text[kSize];
    return text;
  }
  static void on_signal(int signal) {
    const char* text = message();
    if (::write(STDERR_FILENO, text, std::strlen(text)) < 0) {
      // Nothing more can be done from a signal handler.
    }
    ::raise(signal);  // SA_RESETHAND restored the default action: delivered when this handler returns
  }
  struct sigaction previous_[2]{};
};

// ---- the command -----------------------------------------------------------------------------------
struct SweepCommand {
  SweepSpec spec;
  std::string out;
  bool resume = false;
  bool plot = true;
  std::optional<int> threads;  // --threads; unset: the machine's cores shared among the ranks on it
};

// Runs the sweep's unfinished runs dealt over the ranks; rank 0 then writes sweep.csv and the
// summaries. Returns the exit status.
template <class S>
int run_sweep(const SweepCommand& command, const Ranks& ranks) {
  using Net = typename S::Net;
  const SweepSpec& spec = command.spec;
  const std::string& dir = command.out;
  const std::string spec_path = join(dir, "sweep-spec.txt");
  // Every rank checks before rank 0 writes anything, so that none sees another's sweep-spec.txt.
  if (!command.resume && std::filesystem::exists(spec_path))
    throw UsageError("'" + dir + "' holds a sweep already (sweep-spec.txt): continue it with --resume " + dir +
                     ", or choose another --out");
  ranks.barrier();
  if (ranks.root()) {
    prepare_output_directory(dir);
    prepare_output_directory(join(dir, "runs"));
    if (spec.keep_weights) prepare_output_directory(join(dir, "weights"));
    if (!command.resume) tinyattn::io::write_file_atomically(spec_path, spec_text<S>(spec));
  }
  ranks.barrier();

  const std::vector<SweepRun> runs = sweep_runs(spec);
  std::map<std::size_t, std::string> rows = finished_rows<S>(dir, spec, runs);
  std::vector<SweepRun> mine;  // this rank's share of the unfinished runs
  std::size_t pending = 0;
  for (const SweepRun& run : runs)
    if (!rows.count(run.id) &&
        pending++ % static_cast<std::size_t>(ranks.size()) == static_cast<std::size_t>(ranks.rank()))
      mine.push_back(run);
  if (ranks.root())
    std::printf("sweep of %zu runs (%zu finished before) x %lld epochs over %d rank%s, %d thread%s each, into %s/\n",
                runs.size(), rows.size(), static_cast<long long>(spec.epochs), ranks.size(),
                ranks.size() > 1 ? "s" : "", tinyattn::cpu_threads(), tinyattn::cpu_threads() > 1 ? "s" : "",
                dir.c_str());
  std::fflush(stdout);
  std::optional<SweepInterruptNotice> notice;
  if (ranks.root())
    notice.emplace(std::string("\n") + S::program + " sweep: interrupted; the finished runs are kept in " +
                   join(dir, "runs") + "/: continue with " + S::program + " sweep --resume " + dir + "\n");

  // Each member's data is made when a worker takes it: only the runs in flight hold theirs.
  const auto member = [&](tinyattn::index_t i) {
    const SweepRun& run = mine[static_cast<std::size_t>(i)];
    tinyattn::EnsembleMember m = S::member(run);  // the run's data and AdamW, as `PROGRAM train` makes them
    m.init_seed = run.seed;
    m.options.adamw.lr = run.lr, m.options.adamw.weight_decay = run.weight_decay;
    m.options.eval_every = spec.eval_every;
    m.epochs = spec.epochs;
    return m;
  };
  tinyattn::EnsembleOptions options;
  options.accuracy_threshold = spec.threshold;
  options.keep_history = false;
  RunProgress progress(mine.size(), ranks);
  std::string computed;  // this rank's new rows, "id\trow\n", for rank 0
  tinyattn::Ensemble<Net>(static_cast<tinyattn::index_t>(mine.size()), member, options)
      .run([&](const tinyattn::MemberResult<>& r, const Net& net) {
        const SweepRun& run = mine[static_cast<std::size_t>(r.member)];
        const std::string name = run_file_name(run.id);
        if (spec.keep_weights)
          tinyattn::io::save_weights(net, join(join(dir, "weights"), name + ".safetensors"),
                                     S::metadata(run, spec, r.last.epoch));
        const std::string row = sweep_row<S>(run, r, net);
        tinyattn::io::write_file_atomically(join(join(dir, "runs"), name + ".csv"),
                                            sweep_header<S>(spec) + "\n" + row + "\n");
        computed += std::to_string(run.id) + "\t" + row + "\n";
        progress.finished(run, r, spec.threshold);
      });

  const std::vector<std::string> gathered = ranks.gather(computed);
  if (!ranks.root()) return 0;
  for (const std::string& text : gathered) {
    std::stringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      const auto tab = line.find('\t');
      const std::size_t id = std::stoull(line.substr(0, tab));
      rows[id] = line.substr(tab + 1);
      // Ranks on other machines wrote their rows there; keep every row here too.
      const std::string path = join(join(dir, "runs"), run_file_name(id) + ".csv");
      if (!std::filesystem::exists(path))
        tinyattn::io::write_file_atomically(path, sweep_header<S>(spec) + "\n" + rows[id] + "\n");
    }
  }
  if (rows.size() != runs.size())
    throw RunError("the sweep ended with " + std::to_string(rows.size()) + " of " + std::to_string(runs.size()) +
                   " rows; run it again with --resume " + dir);
  std::string csv = sweep_header<S>(spec) + "\n";
  std::vector<RowNumbers> numbers;
  std::size_t diverged = 0, reached = 0;
  for (const SweepRun& run : runs) {
    csv += rows[run.id] + "\n";
    numbers.push_back(row_numbers(run, rows[run.id]));
    diverged += numbers.back().diverged;
    reached += !std::isnan(numbers.back().reached);
  }
  tinyattn::io::write_file_atomically(join(dir, "sweep.csv"), csv);
  std::vector<std::string> files{"sweep.csv"};
  if (!write_sweep_summaries(spec, numbers, dir, command.plot, files)) warn_no_gnuplot();
  std::printf("done: %zu runs, %zu reached %g%% test accuracy, %zu diverged\nfiles in %s/: sweep-spec.txt runs/%s",
              runs.size(), reached, 100 * spec.threshold, diverged, dir.c_str(), spec.keep_weights ? " weights/" : "");
  for (const auto& f : files) std::printf(" %s", f.c_str());
  std::printf("\n");
  return 0;
}

// ---- the command line -------------------------------------------------------------------------------
// `PROGRAM sweep`: the settings from the flags (or, with --resume, from DIR/sweep-spec.txt), then the
// processes: parsing comes first, so that a usage error ends every rank alike before MPI starts.
template <class S>
SweepCommand parse_sweep_command(const Arguments& args) {
  if (!args.positional().empty())
    throw UsageError("sweep takes no positional argument, found '" + args.positional()[0] + "'");
  SweepCommand c;
  c.plot = !args.has("--no-plot");
  if (const auto resume = args.text("--resume")) {
    for (const std::string& flag : sweep_setting_flags())
      if (args.has(flag))
        throw UsageError("--resume continues the sweep with the settings in " + join(*resume, "sweep-spec.txt") +
                         "; drop " + flag);
    if (args.has("--keep-weights")) throw UsageError("--resume keeps the sweep's own --keep-weights setting; drop it");
    if (args.has("--out") && *args.text("--out") != *resume)
      throw UsageError("--resume writes into the sweep's directory " + *resume + "; drop --out");
    c.spec = read_sweep_spec<S>(join(*resume, "sweep-spec.txt"));
    c.out = *resume;
    c.resume = true;
  } else {
    std::map<std::string, std::string> values;
    for (const std::string& flag : sweep_setting_flags())
      if (const auto value = args.text(flag)) values[flag] = *value;
    c.spec = parse_sweep_spec<S>(values, args.has("--keep-weights"));
    c.out = args.text("--out").value_or(std::string(S::program) + "-sweep");
  }
  if (const auto threads = args.integer("--threads", 1, 4096)) c.threads = static_cast<int>(*threads);
  return c;
}

// The processes: MPI started (when built with it), each rank's threads chosen, the sweep run.
template <class S>
int run_sweep_command(const SweepCommand& c) {
  const Ranks ranks;
  if (c.threads) {
    tinyattn::set_cpu_threads(*c.threads);
  } else if (mpirun_world_size() > 0 && !std::getenv("OMP_NUM_THREADS")) {
    // The ranks on one machine share its cores. Open MPI binds each of 1 or 2 ranks to a single core by
    // default, which would leave the other cores idle: say so (omp_get_num_procs: the cores this
    // process may run on).
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int share = std::max(1, cores / mpirun_local_size());
#if defined(_OPENMP)
    const int usable = omp_get_num_procs();
#else
    const int usable = share;
#endif
    if (usable < share && ranks.root())
      std::fprintf(stderr,
                   "%s: warning: mpirun bound this rank to %d core%s of the %d its share of this machine "
                   "has; with Open MPI pass --bind-to none to use them all\n",
                   S::program, usable, usable > 1 ? "s" : "", share);
    tinyattn::set_cpu_threads(std::min(share, usable));
  }
  try {
    return run_sweep<S>(c, ranks);
  } catch (const std::exception& e) {
    if (ranks.size() == 1) throw;
    const bool usage = dynamic_cast<const UsageError*>(&e) != nullptr;
    std::fprintf(stderr, "%s (rank %d): %s%s\n", S::program, ranks.rank(), usage ? "" : "error: ", e.what());
    ranks.abort_all(usage ? 2 : 1);
  }
}

// Under mpirun every rank parses the same command line and reads the same sweep-spec.txt, so every rank
// meets the same mistake: it is said once, by rank 0, and the other ranks end with the same status
// without a word.
template <class S>
int sweep_command(const std::vector<std::string>& words) {
  std::set<std::string> value_flags = sweep_setting_flags();
  value_flags.insert({"--out", "--resume", "--threads"});
  SweepCommand c;
  try {
    c = parse_sweep_command<S>(Arguments(words, value_flags, {"--keep-weights", "--no-plot"}));
  } catch (const std::exception& e) {
    if (mpirun_world_rank() > 0) std::exit(dynamic_cast<const UsageError*>(&e) != nullptr ? 2 : 1);
    throw;
  }
  return run_sweep_command<S>(c);
}

}  // namespace programs
