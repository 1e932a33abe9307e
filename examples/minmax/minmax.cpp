// minmax — the reference experiment: train a one-layer attention network on "a op b =" -> max/min,
// save its weights in the notebook's format, and draw the attention heatmaps the notebook drew.
//
//   minmax train   [--epochs 750] [--seed 0] [--lr 2e-3] [--weight-decay 1.0] [--out DIR] [--no-plot]
//                  [--checkpoint-every N] [--resume DIR] [--threads N] [--snapshot-every K]
//   minmax plot    --weights FILE [--out DIR]
//   minmax predict --weights FILE A OP B        (OP is max or min)
//   minmax eval    --weights FILE [--json] [--seed S]
//   minmax analyze --weights FILE [--out DIR]   circuits, attribution, ablations, failure atlas, report.md
//   minmax sweep   [--seeds 0-63] [--lr X,..] [--weight-decay X,..] [--train-fraction F,..] [--out DIR] ...
//                  [mpirun -np N] many runs at once; sweep.csv, phase diagrams (examples/common/sweep.hpp)
//
// Exit status: 0 success (also when gnuplot is missing: the figures are skipped with a warning),
// 1 a run-time error (I/O, a bad weights file, divergence), 2 a usage error, 130 interrupted (SIGINT
// or SIGTERM: a checkpoint is saved first, see --resume).
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tinyattn/inspect/minmax_attention.hpp"
#include "tinyattn/io/atomic_file.hpp"
#include "tinyattn/io/npy.hpp"
#include "tinyattn/io/weights.hpp"
#include "tinyattn/plot/minmax_heatmaps.hpp"
#include "tinyattn/tinyattn.hpp"
#if defined(TINYATTN_MINMAX_CUDA)
#include "tinyattn/backend/thrust.hpp"
#endif

#include "analyze.hpp"
#include "snapshots.hpp"
#include "minmax_sweep.hpp"
#include "cli.hpp"  // examples/common
#include "progress.hpp"

namespace minmax {

using programs::Arguments;
using programs::Progress;
using programs::UsageError;

using tinyattn::index_t;
using Shape = tinyattn::ReferenceShape;  // 128 operands + max, min, '='; 32 wide; 2 heads; 4 tokens
constexpr index_t kMaxN = Shape::vocab - 3;

constexpr const char* kUsage = R"(minmax — train a small attention network on max/min and look inside it

usage:
  minmax train   [--epochs N] [--seed S] [--lr X] [--weight-decay X] [--out DIR] [--no-plot]
                 [--checkpoint-every N] [--resume DIR] [--threads N] [--snapshot-every K]
                 [--train-fraction F]BACKEND_FLAG
  minmax plot    --weights FILE [--out DIR]BACKEND_FLAG
  minmax predict --weights FILE A OP B        e.g.  minmax predict --weights w.safetensors 17 max 99
  minmax eval    --weights FILE [--json] [--seed S]   loss and accuracy over all 32,768 inputs and each part
                 of the split of seed S (default: the file's 'seed', else 0); --json: the PyTorch peer's keys
  minmax analyze --weights FILE [--out DIR]   what the model does and where it fails: QK/OV circuits,
                 direct logit attribution, head ablations, failure atlas, DIR/report.md (minmax-analysis)
  minmax sweep   [--seeds LIST] [--lr LIST] [--weight-decay LIST] [--train-fraction LIST] [--epochs N]
                 [--eval-every K] [--threshold X] [--axes X,Y] [--keep-weights] [--out DIR] [--no-plot]
                 [--threads N] | --resume DIR     many runs at once (on the CPU); under mpirun -np N the runs
                 are dealt over the processes and rank 0 writes the results
  minmax --help | --version

train (defaults = the original experiment):
  --epochs N            full-batch epochs (750)
  --seed S              initial weights and train/test split (0); the split equals PyTorch's for S
  --lr X                AdamW learning rate (2e-3)
  --weight-decay X      AdamW decoupled weight decay (1.0); betas 0.9, 0.99; eps 1e-8
  --out DIR             where the files go (minmax-out); created if missing
  --no-plot             skip the PNG figures (weights, curves and .npy are still written)
  --checkpoint-every N  write DIR/checkpoint.safetensors every N epochs (atomically)
  --resume DIR          continue from DIR/checkpoint.safetensors and DIR/curves.csv; ends
                        bit-identical to an uninterrupted run (--out defaults to DIR)
  --threads N           CPU threads (default: all cores)
  --snapshot-every K    keep the '=' query's attention over all inputs every K epochs (and at the start):
                        attention_evolution.npy (uint8 weight*255, frames x op x heads x keys x a x b) and
                        .gif, progress.csv/png (entropy per head, tensor norms, loss/accuracy on the
                        test split's max and min inputs)
  --train-fraction F    train on the first int(32768 * F) samples of the seed's shuffled order, test on the
                        rest (default: the reference split, a third: 10,922)

sweep (runs = every combination of the lists; LIST: 1e-3,2e-3 or, for seeds, 0-63 and 0,4,9-12):
  --seeds LIST          initial weights and split seeds (0)       --lr LIST             (2e-3)
  --weight-decay LIST   (1.0)                                     --train-fraction LIST (1/3)
  --epochs N (750)  --eval-every K (1; N a multiple of K)  --threshold X: the test accuracy whose first epoch
                        is recorded (0.99)
  --axes X,Y            the phase diagram's axes among lr, weight-decay, train-fraction (default: the
                        first two varied of weight-decay, train-fraction, lr), averaged over the rest
  --keep-weights        DIR/weights/run-NNNNNN.safetensors for every run
  --out DIR             (minmax-sweep); every finished run's row is kept in DIR/runs/ as it finishes
  --resume DIR          continue a sweep killed or crashed: finished runs are kept, the rest run; ends with
                        the same sweep.csv as an uninterrupted sweep
  files: sweep.csv (a row per run: settings, status ok|diverged, final train/test loss and accuracy, the
  epoch test accuracy first reached the threshold, each head's mean attention from '=' to A, op, B on max
  and on min), phase.csv, phase_test_accuracy.png, phase_epochs.png, histogram_*.png

files in DIR: weights.safetensors (the notebook's state_dict names), curves.csv, curves.png,
attention_{weights,scores}_{max,min}.png and .npy (heads x keys A,op,B x a x b).
Ctrl-C saves a checkpoint and exits with status 130. Gnuplot is found through GNUPLOT_IOSTREAM_CMD
or PATH; without it the figures are skipped with a warning.
)";

// ---- signals ---------------------------------------------------------------------------------------
std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int signal) { g_stop_signal.store(signal); }

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// ---- files ------------------------------------------------------------------------------------------
// The output directory, curves.csv and its figure: examples/common/run_files.hpp.
using programs::CurveRow;
using programs::join;
using programs::prepare_output_directory;
using programs::read_curves_csv;
using programs::RunError;
using programs::warn_no_gnuplot;
using programs::write_curves_csv;

// ---- figures ------------------------------------------------------------------------------------------
// Writes the attention maps as .npy and, unless plotting is off or impossible, the four heatmap PNGs.
// Returns false when gnuplot was missing (the caller warns; that is not an error).
template <class Net>
bool write_attention_figures(const Net& net, const std::string& dir, bool plot, std::vector<std::string>& files) {
  const tinyattn::MinMaxTask task(kMaxN);
  const tinyattn::MinMaxAttentionMaps maps = tinyattn::minmax_attention_maps(net, task);
  const std::vector<std::int64_t> shape{maps.heads, maps.keys, maps.n, maps.n};
  const char* op_names[2] = {"max", "min"};
  for (int op = 0; op < 2; ++op) {
    for (const char* kind : {"weights", "scores"}) {
      const std::string name = std::string("attention_") + kind + "_" + op_names[op] + ".npy";
      tinyattn::io::write_npy(join(dir, name), kind[0] == 'w' ? maps.weights[op] : maps.scores[op], shape);
      files.push_back(name);
    }
  }
  if (!plot) return true;
  if (!tinyattn::plot::gnuplot_available()) return false;
  for (int op = 0; op < 2; ++op) {
    tinyattn::plot::HeatmapGrid weights = tinyattn::plot::attention_weights_grid(op_names[op], maps.heads, maps.n);
    weights.values = maps.weights[op];
    tinyattn::plot::HeatmapGrid scores = tinyattn::plot::attention_scores_grid(op_names[op], maps.heads, maps.n);
    scores.values = maps.scores[op];
    for (auto* grid : {&weights, &scores}) {
      const std::string name =
          std::string("attention_") + (grid == &weights ? "weights_" : "scores_") + op_names[op] + ".png";
      tinyattn::plot::write_heatmap_grid_png(*grid, join(dir, name));
      files.push_back(name);
    }
  }
  return true;
}

bool write_curves_figure(const std::vector<CurveRow>& rows, const std::string& dir, std::vector<std::string>& files) {
  return programs::write_curves_figure(rows, "min/max: accuracy and loss per epoch", dir, files);
}

// ---- commands -------------------------------------------------------------------------------------------
struct TrainSettings {
  std::int64_t epochs = 750;
  std::uint64_t seed = 0;
  tinyattn::AdamWConfig adamw = tinyattn::MinMaxTask::adamw();
  std::string out = "minmax-out";
  bool plot = true;
  std::int64_t checkpoint_every = 0;
  std::string resume;
  std::int64_t snapshot_every = 0;
  std::optional<double> train_fraction;  // unset: the reference split (a third)
  std::optional<int> threads;            // unset: the library's default
};

tinyattn::MinMaxTask task_of(std::uint64_t seed, const std::optional<double>& train_fraction) {
  return train_fraction ? tinyattn::MinMaxTask(kMaxN, seed, *train_fraction) : tinyattn::MinMaxTask(kMaxN, seed);
}

// The split a weights file was trained on: its metadata's seed and minmax_train_fraction (not the
// PyTorch peer's train_fraction, which its min/max task ignores; a seed given on
// the command line wins).
tinyattn::MinMaxTask task_of(const tinyattn::io::Metadata& meta, const std::optional<std::int64_t>& seed_flag) {
  std::uint64_t seed = 0;
  if (seed_flag) {
    seed = static_cast<std::uint64_t>(*seed_flag);
  } else if (const auto found = meta.find("seed"); found != meta.end()) {
    seed = static_cast<std::uint64_t>(Arguments::parse_integer(tinyattn::io::detail::unquoted(found->second),
                                                               "the weights' metadata 'seed'", 0,
                                                               std::numeric_limits<std::int64_t>::max()));
  }
  std::optional<double> fraction;
  if (const auto found = meta.find("minmax_train_fraction"); found != meta.end()) {
    const std::string text = tinyattn::io::detail::unquoted(found->second);
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !(value > 0 && value < 1))
      throw RunError("the weights' metadata 'minmax_train_fraction' is '" + text + "', expected a number in (0, 1)");
    fraction = value;
  }
  return task_of(seed, fraction);
}

tinyattn::io::Metadata run_metadata(const TrainSettings& s, std::int64_t epoch) {
  tinyattn::io::Metadata meta{{"task", "minmax"},
                              {"max_n", std::to_string(kMaxN)},
                              {"seed", std::to_string(s.seed)},
                              {"epochs", std::to_string(epoch)},
                              {"lr", programs::number_text(s.adamw.lr)},
                              {"weight_decay", programs::number_text(s.adamw.weight_decay)},
                              {"betas", "0.9,0.99"},
                              {"eps", "1e-08"},
                              {"optimizer", "AdamW"}};
  if (s.train_fraction) meta["minmax_train_fraction"] = programs::number_text(*s.train_fraction);
  return meta;
}

template <class Backend>
int train(const TrainSettings& settings) {
  using Net = tinyattn::AttentionNetwork<Shape, Backend>;
  const std::string& dir = settings.out;
  prepare_output_directory(dir);
  const tinyattn::MinMaxTask task = task_of(settings.seed, settings.train_fraction);
  Net net(settings.seed);
  tinyattn::TrainerOptions options;
  options.adamw = settings.adamw;
  tinyattn::Trainer<Net> trainer(net, task.train(), task.test(), options);

  std::vector<CurveRow> rows;
  if (!settings.resume.empty()) {
    tinyattn::io::load_checkpoint(trainer, join(settings.resume, "checkpoint.safetensors"));
    rows = read_curves_csv(join(settings.resume, "curves.csv"));
    // curves.csv is written before the checkpoint (see save_checkpoint below), so after a crash between
    // the two it may hold epochs past the checkpoint: those are recomputed, identically.
    if (static_cast<std::int64_t>(rows.size()) < trainer.epochs())
      throw RunError(join(settings.resume, "curves.csv") + " has " + std::to_string(rows.size()) +
                     " epochs, the checkpoint " + std::to_string(trainer.epochs()));
    rows.resize(static_cast<std::size_t>(trainer.epochs()));
    std::printf("resuming from %s at epoch %lld\n", settings.resume.c_str(), static_cast<long long>(trainer.epochs()));
  }
  const std::int64_t first = trainer.epochs() + 1;
  if (first > settings.epochs + 1)
    throw RunError("the checkpoint is at epoch " + std::to_string(first - 1) + ", past --epochs " +
                   std::to_string(settings.epochs));
  std::printf(
      "training Shape<%d, %d, %d, %d> on %s: %d train / %d test samples, epochs %lld..%lld, lr %g, weight decay %g, "
      "seed %llu\n",
      static_cast<int>(Shape::vocab), static_cast<int>(Shape::d_model), static_cast<int>(Shape::heads),
      static_cast<int>(Shape::context), tinyattn::Primitives<Backend>::name(), task.train().size(), task.test().size(),
      static_cast<long long>(first), static_cast<long long>(settings.epochs), settings.adamw.lr,
      settings.adamw.weight_decay, static_cast<unsigned long long>(settings.seed));

  const std::string checkpoint = join(dir, "checkpoint.safetensors"), curves = join(dir, "curves.csv");
  // The curves first: a crash between the two writes leaves curves ahead of the checkpoint, which
  // --resume accepts, never behind it.
  auto save_checkpoint = [&] {
    write_curves_csv(curves, rows);
    tinyattn::io::save_checkpoint(trainer, checkpoint, run_metadata(settings, trainer.epochs()));
  };
  MinMaxSnapshots<Net> snapshots(task, settings.snapshot_every);
  snapshots.reserve(first, settings.epochs);
  snapshots.maybe_take(net, first - 1, /*force=*/true);
  install_stop_handlers();
  Progress progress(first, settings.epochs);
  try {
    trainer.run(settings.epochs - first + 1, [&](const tinyattn::EpochMetrics& m) {
      rows.push_back({m.epoch, m.train_loss, m.train_accuracy, m.test_loss, m.test_accuracy});
      progress.update(m);
      snapshots.maybe_take(net, m.epoch);
      if (settings.checkpoint_every > 0 && m.epoch % settings.checkpoint_every == 0) save_checkpoint();
      return g_stop_signal.load() == 0;
    });
  } catch (const tinyattn::DivergenceError& e) {
    progress.interrupt();
    tinyattn::io::save_weights(net, join(dir, "weights.safetensors"), run_metadata(settings, e.epoch() - 1));
    write_curves_csv(curves, rows);
    throw RunError(std::string(e.what()) + "; last good weights saved to " + join(dir, "weights.safetensors"));
  }
  if (const int signal = g_stop_signal.load()) {
    progress.interrupt();
    save_checkpoint();
    std::fprintf(
        stderr,
        "interrupted (%s) after epoch %lld: checkpoint saved; continue with: minmax train --resume %s --epochs %lld\n",
        signal == SIGINT ? "SIGINT" : "SIGTERM", static_cast<long long>(trainer.epochs()), dir.c_str(),
        static_cast<long long>(settings.epochs));
    return 130;
  }
  const double seconds = progress.seconds();
  std::vector<std::string> files{"weights.safetensors", "curves.csv"};
  tinyattn::io::Metadata meta = run_metadata(settings, trainer.epochs());
  if (!rows.empty()) {
    char text[32];
    std::snprintf(text, sizeof text, "%.6f", rows.back().train_acc);
    meta["train_accuracy"] = text;
    std::snprintf(text, sizeof text, "%.6f", rows.back().test_acc);
    meta["test_accuracy"] = text;
  }
  tinyattn::io::save_weights(net, join(dir, "weights.safetensors"), meta);
  write_curves_csv(curves, rows);
  if (settings.checkpoint_every > 0) save_checkpoint();
  // The attention maps first: their .npy files are written even when gnuplot then fails.
  bool gnuplot = write_attention_figures(net, dir, settings.plot, files);
  gnuplot = write_curves_figure(settings.plot ? rows : std::vector<CurveRow>{}, dir, files) && gnuplot;
  gnuplot = snapshots.write(dir, settings.plot, files) && gnuplot;
  if (settings.plot && !gnuplot) warn_no_gnuplot();

  const std::int64_t ran = settings.epochs - first + 1;
  std::printf("done: %lld epochs in %.2f s (%.2f ms/epoch)", static_cast<long long>(ran), seconds,
              ran > 0 ? 1000 * seconds / ran : 0.0);
  if (!rows.empty())
    std::printf("; train accuracy %.2f%%, test accuracy %.2f%%", 100 * rows.back().train_acc,
                100 * rows.back().test_acc);
  if (settings.snapshot_every > 0)
    std::printf("\nsnapshots: %d frames in %.2f s (%.1f%% on top of the training itself)", snapshots.frames(),
                snapshots.seconds(),
                seconds > snapshots.seconds() ? 100 * snapshots.seconds() / (seconds - snapshots.seconds()) : 0.0);
  std::printf("\nfiles in %s/:", dir.c_str());
  for (const auto& f : files) std::printf(" %s", f.c_str());
  std::printf("\n");
  return 0;
}

template <class Backend>
int plot(const std::string& weights, const std::string& dir) {
  using Net = tinyattn::AttentionNetwork<Shape, Backend>;
  Net net;
  tinyattn::io::load_weights(net, weights);
  prepare_output_directory(dir);
  std::vector<std::string> files;
  const std::string beside =
      join(weights.find('/') == std::string::npos ? "." : weights.substr(0, weights.rfind('/')), "curves.csv");
  bool gnuplot = write_attention_figures(net, dir, true, files);  // first: the .npy files survive a failing gnuplot
  if (access(beside.c_str(), R_OK) == 0) gnuplot = write_curves_figure(read_curves_csv(beside), dir, files) && gnuplot;
  if (!gnuplot) warn_no_gnuplot();
  std::printf("files in %s/:", dir.c_str());
  for (const auto& f : files) std::printf(" %s", f.c_str());
  std::printf("\n");
  return 0;
}

template <class Backend>
int predict(const std::string& weights, const std::vector<std::string>& words) {
  if (words.size() != 3)
    throw UsageError("predict needs three words A OP B, e.g. 17 max 99; found " + std::to_string(words.size()));
  const index_t a = static_cast<index_t>(Arguments::parse_integer(words[0], "operand A", 0, kMaxN - 1));
  const index_t b = static_cast<index_t>(Arguments::parse_integer(words[2], "operand B", 0, kMaxN - 1));
  if (words[1] != "max" && words[1] != "min") throw UsageError("OP must be 'max' or 'min', found '" + words[1] + "'");
  const auto op = words[1] == "max" ? tinyattn::MinMaxOp::max : tinyattn::MinMaxOp::min;
  using Net = tinyattn::AttentionNetwork<Shape, Backend>;
  Net net;
  tinyattn::io::load_weights(net, weights);
  const tinyattn::MinMaxTask task(kMaxN);
  const tinyattn::TokenBatch batch = task.batch({task.index_of(a, op, b)});
  const auto cache = net.inspect(batch, tinyattn::cache_pattern | tinyattn::cache_logits);
  const float* logits = cache.logits_at(0, Net::context - 1);
  index_t best = 0;
  for (index_t c = 1; c < Net::vocab; ++c)
    if (logits[c] > logits[best]) best = c;
  const index_t expected = tinyattn::MinMaxTask::answer(a, op, b);
  std::printf("%s(%d, %d) = %d   (%s; expected %d)\n", words[1].c_str(), a, b, best,
              best == expected ? "right" : "wrong", expected);
  std::printf("attention from '=':      A       op       B       =\n");
  for (index_t h = 0; h < Net::heads; ++h) {
    std::printf("  head %d          ", h);
    for (index_t k = 0; k < Net::context; ++k) std::printf(" %7.4f", cache.weight(0, h, Net::context - 1, k));
    std::printf("\n");
  }
  return 0;
}

template <class Backend>
int eval(const std::string& weights, const std::optional<std::int64_t>& seed_flag, bool json) {
  using Net = tinyattn::AttentionNetwork<Shape, Backend>;
  Net net;
  const tinyattn::MinMaxTask task = task_of(tinyattn::io::load_weights(net, weights), seed_flag);
  const std::uint64_t seed = task.seed();
  struct Part {
    const char* prefix;
    const char* name;
    tinyattn::Evaluation e;
  };
  const Part parts[] = {{"", "all", net.evaluate(task.all())},
                        {"train_", "train", net.evaluate(task.train())},
                        {"test_", "test", net.evaluate(task.test())}};
  if (json) {
    std::printf("{");
    for (const Part& p : parts)
      std::printf("\"%sloss\": %.9g, \"%saccuracy\": %.9g, \"%sscored\": %lld, ", p.prefix, p.e.loss, p.prefix,
                  p.e.accuracy, p.prefix, static_cast<long long>(p.e.samples));
    std::printf("\"wrong\": %lld}\n", static_cast<long long>(parts[0].e.samples - parts[0].e.correct));
    return 0;
  }
  std::printf("split of seed %llu\n%-7s %12s %10s %10s %10s\n", static_cast<unsigned long long>(seed), "data", "loss",
              "accuracy", "scored", "wrong");
  for (const Part& p : parts)
    std::printf("%-7s %12.6f %9.4f%% %10lld %10lld\n", p.name, p.e.loss, 100 * p.e.accuracy,
                static_cast<long long>(p.e.samples), static_cast<long long>(p.e.samples - p.e.correct));
  return 0;
}

template <class Backend>
int analyze(const std::string& weights, const std::string& out) {
  using Net = tinyattn::AttentionNetwork<Shape, Backend>;
  Net net;
  return analyze_model(net, task_of(tinyattn::io::load_weights(net, weights), std::nullopt), weights, out);
}

// ---- entry ----------------------------------------------------------------------------------------------
#if defined(TINYATTN_MINMAX_CUDA)
constexpr const char* kBackendFlag = " [--backend cuda|cpu]";
#else
constexpr const char* kBackendFlag = "";
#endif

std::string usage() {
  std::string text = kUsage;
  for (std::size_t at; (at = text.find("BACKEND_FLAG")) != std::string::npos;) text.replace(at, 12, kBackendFlag);
  return text;
}

template <class F>
int with_backend(const Arguments& args, F&& run) {
#if defined(TINYATTN_MINMAX_CUDA)
  const std::string backend = args.text("--backend").value_or("cuda");
  if (backend == "cuda") return run(tinyattn::backend::thrust{});
  if (backend == "cpu") return run(tinyattn::backend::cpu{});
  throw UsageError("--backend must be 'cuda' or 'cpu', found '" + backend + "'");
#else
  (void)args;
  return run(tinyattn::backend::cpu{});
#endif
}

// ---- the command line: parse, then validate, then dispatch ---------------------------------------------

// A command line taken apart: what to do, and for a command its words and flags (each checked to be
// one the command takes; their values are checked by validate_*).
struct Invocation {
  enum class Kind { help, version, command } kind = Kind::command;
  std::string command;             // train, sweep, eval, analyze, plot or predict
  std::vector<std::string> words;  // after the command; `sweep` parses its own
  std::optional<Arguments> args;   // every command but sweep
};

constexpr const char* kCommands = "train, sweep, eval, analyze, plot or predict";

Invocation parse(int argc, char** argv) {
  Invocation inv;
  inv.words.assign(argv + 1, argv + argc);
  if (inv.words.empty()) throw UsageError(std::string("missing command: ") + kCommands);
  inv.command = inv.words.front();
  inv.words.erase(inv.words.begin());
  if (inv.command == "--help" || inv.command == "-h" || inv.command == "help") {
    inv.kind = Invocation::Kind::help;
    return inv;
  }
  if (inv.command == "--version") {
    inv.kind = Invocation::Kind::version;
    return inv;
  }
  const std::map<std::string, std::pair<std::set<std::string>, std::set<std::string>>> flags_of = {
      {"train",
       {{"--epochs", "--seed", "--lr", "--weight-decay", "--out", "--checkpoint-every", "--resume", "--threads",
         "--snapshot-every", "--train-fraction"},
        {"--no-plot"}}},
      {"sweep", {}},
      {"eval", {{"--weights", "--seed"}, {"--json"}}},
      {"analyze", {{"--weights", "--out"}, {}}},
      {"plot", {{"--weights", "--out"}, {}}},
      {"predict", {{"--weights", "--out"}, {}}},
  };
  const auto flags = flags_of.find(inv.command);
  if (flags == flags_of.end()) throw UsageError("unknown command '" + inv.command + "'; expected " + kCommands);
  for (const auto& w : inv.words)
    if (w == "--help" || w == "-h") {
      inv.kind = Invocation::Kind::help;
      return inv;
    }
  if (inv.command == "sweep") return inv;
  std::set<std::string> value_flags = flags->second.first;
#if defined(TINYATTN_MINMAX_CUDA)
  value_flags.insert("--backend");
#endif
  inv.args.emplace(inv.words, value_flags, flags->second.second);
  return inv;
}

void require_no_positional(const std::string& command, const Arguments& args) {
  if (!args.positional().empty())
    throw UsageError(command + " takes no positional argument, found '" + args.positional()[0] + "'");
}

// The values of `train`'s flags, each in its range; with --resume, the run's settings come from the
// checkpoint and the flags given may only agree with them.
TrainSettings validate_train(const Arguments& args) {
  require_no_positional("train", args);
  TrainSettings s;
  s.epochs = args.integer("--epochs", 0, 100'000'000).value_or(s.epochs);
  s.seed = static_cast<std::uint64_t>(args.integer("--seed", 0, std::numeric_limits<std::int64_t>::max()).value_or(0));
  s.adamw.lr = args.number("--lr", 0.0, 10.0, true).value_or(s.adamw.lr);
  s.adamw.weight_decay = args.number("--weight-decay", 0.0, 1e6, false).value_or(s.adamw.weight_decay);
  s.checkpoint_every = args.integer("--checkpoint-every", 1, 100'000'000).value_or(0);
  s.snapshot_every = args.integer("--snapshot-every", 1, 100'000'000).value_or(0);
  if (const auto f = args.number("--train-fraction", 0.0, 1.0, true)) {
    if (*f >= 1.0) throw UsageError("--train-fraction must be > 0 and < 1, found " + *args.text("--train-fraction"));
    s.train_fraction = *f;
  }
  s.resume = args.text("--resume").value_or("");
  s.out = args.text("--out").value_or(s.resume.empty() ? s.out : s.resume);
  s.plot = !args.has("--no-plot");
  if (const auto threads = args.integer("--threads", 1, 4096)) s.threads = static_cast<int>(*threads);
  if (s.resume.empty()) return s;

  const std::string checkpoint = join(s.resume, "checkpoint.safetensors");
  const tinyattn::io::SafetensorsFile file = tinyattn::io::SafetensorsFile::load(checkpoint);
  const auto& meta = file.metadata();
  auto from = [&](const char* key) -> std::string {
    const auto found = meta.find(key);
    if (found == meta.end()) throw RunError(checkpoint + ": metadata '" + key + "' is missing");
    return found->second;
  };
  auto number = [&](const char* key) {
    const std::string text = from(key);
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !std::isfinite(value) || value < 0)
      throw RunError(checkpoint + ": metadata '" + key + "' is '" + text + "', expected a non-negative number");
    return value;
  };
  const auto seed = static_cast<std::uint64_t>(
      Arguments::parse_integer(from("seed"), "the checkpoint's seed", 0, std::numeric_limits<std::int64_t>::max()));
  const double lr = number("lr"), wd = number("weight_decay");
  if (args.has("--seed") && seed != s.seed)
    throw UsageError("--seed differs from the checkpoint's seed " + from("seed"));
  if (args.has("--lr") && lr != s.adamw.lr) throw UsageError("--lr differs from the checkpoint's lr " + from("lr"));
  if (args.has("--weight-decay") && wd != s.adamw.weight_decay)
    throw UsageError("--weight-decay differs from the checkpoint's " + from("weight_decay"));
  std::optional<double> fraction;
  if (meta.count("minmax_train_fraction")) fraction = number("minmax_train_fraction");
  if (args.has("--train-fraction") && fraction != s.train_fraction)
    throw UsageError("--train-fraction differs from the checkpoint's " +
                     (fraction ? from("minmax_train_fraction") : std::string("(the reference split)")));
  s.seed = seed, s.adamw.lr = lr, s.adamw.weight_decay = wd, s.train_fraction = fraction;
  return s;
}

// The flags of eval, analyze, plot and predict: a weights file, and what each takes besides.
struct WeightsSettings {
  std::string weights;
  std::string out;                   // analyze, plot
  std::optional<std::int64_t> seed;  // eval
  bool json = false;                 // eval
  std::vector<std::string> words;    // predict: the inputs
};

WeightsSettings validate_weights_command(const std::string& command, const Arguments& args) {
  WeightsSettings s;
  const auto weights = args.text("--weights");
  if (!weights) throw UsageError(command + " needs --weights FILE");
  s.weights = *weights;
  if (command == "predict") {
    if (args.has("--out")) throw UsageError("predict takes no --out");
    s.words = args.positional();
    return s;
  }
  require_no_positional(command, args);
  if (command == "eval") {
    s.seed = args.integer("--seed", 0, std::numeric_limits<std::int64_t>::max());
    s.json = args.has("--json");
  } else {
    s.out = args.text("--out").value_or(command == "analyze" ? "minmax-analysis" : "minmax-out");
  }
  return s;
}

int dispatch(const Invocation& inv) {
  if (inv.kind == Invocation::Kind::help) {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  if (inv.kind == Invocation::Kind::version) {
    std::printf("minmax (tinyattn) 0.1.0; sweep across processes with MPI: %s\n",
                programs::built_with_mpi() ? "yes" : "no (built without)");
    return 0;
  }
  if (inv.command == "sweep") return programs::sweep_command<MinMaxSweep>(inv.words);
  const Arguments& args = *inv.args;
  if (inv.command == "train") {
    const TrainSettings s = validate_train(args);
    if (s.threads) tinyattn::set_cpu_threads(*s.threads);
    return with_backend(args, [&](auto backend) { return train<decltype(backend)>(s); });
  }
  const WeightsSettings s = validate_weights_command(inv.command, args);
  return with_backend(args, [&](auto backend) {
    using B = decltype(backend);
    if (inv.command == "eval") return eval<B>(s.weights, s.seed, s.json);
    if (inv.command == "analyze") return analyze<B>(s.weights, s.out);
    if (inv.command == "plot") return plot<B>(s.weights, s.out);
    return predict<B>(s.weights, s.words);
  });
}

int main_checked(int argc, char** argv) { return dispatch(parse(argc, argv)); }

}  // namespace minmax

int main(int argc, char** argv) {
  try {
    return minmax::main_checked(argc, argv);
  } catch (const programs::UsageError& e) {
    std::fprintf(stderr, "minmax: %s\n(run 'minmax --help' for usage)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "minmax: error: %s\n", e.what());
    return 1;
  }
}
