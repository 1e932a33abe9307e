// examples/common/experiment_program.hpp — the commands every experiment program has (train, eval, plot,
// predict), written once; an experiment (examples/grokking, examples/induction) supplies its model,
// data, figures and prediction.
//
// An Experiment type provides:
//   static constexpr const char* name, *title        program name ("grokking"), figure titles
//   static std::string usage()                        the --help text
//   using Net = tinyattn::Transformer<...>
//   static TrainSettings defaults()                   epochs, AdamW values, evaluation period ...
//   static std::set<std::string> data_flags()         its data options (each takes a value)
//   Experiment(const Arguments& args, const tinyattn::io::Metadata* saved)
//                                                     data settings from flags, else from a run's
//                                                     saved metadata (resume, eval of a weights file)
//   TokenBatch train(), test()                        the data
//   tinyattn::io::Metadata metadata()                 the data settings, saved with weights
//   bool figures(const Net&, const std::vector<CurveRow>&, const std::string& dir, bool plot,
//                std::vector<std::string>& files)      .npy/.csv always, PNGs when plot; false when
//                                                     gnuplot is missing
//   int predict(const Net&, const std::vector<std::string>& words)
//   using Sweep = ...                                 optional: the `sweep` command's description of the
//                                                     experiment (examples/common/sweep.hpp)
//
// Exit status: 0 success (also without gnuplot: figures are skipped with a warning), 1 a run-time error
// (I/O, a bad weights file, divergence), 2 a usage error, 130 interrupted (SIGINT or SIGTERM: a
// checkpoint is saved first, see --resume).
#pragma once

#include <atomic>
#include <csignal>
#include <cstdio>
#include <limits>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "cli.hpp"
#include "progress.hpp"
#include "run_files.hpp"
#include "sweep.hpp"
#include "tinyattn/backend/threads.hpp"
#include "tinyattn/io/weights.hpp"
#include "tinyattn/tinyattn.hpp"

namespace programs {

struct TrainSettings {
  std::int64_t epochs = 1000;
  std::uint64_t seed = 0;  // initial weights and the minibatch order
  tinyattn::AdamWConfig adamw;
  tinyattn::index_t batch_size = 0;  // 0: full batch
  std::int64_t eval_every = 1;
  std::string out;
  bool plot = true;
  std::int64_t checkpoint_every = 0;
  std::string resume;
};

// ---- signals ---------------------------------------------------------------------------------------------
inline std::atomic<int> g_stop_signal{0};
extern "C" inline void on_stop_signal(int signal) { g_stop_signal.store(signal); }

inline void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// ---- metadata --------------------------------------------------------------------------------------------
// A saved setting: the metadata value of `key` (JSON string quotes removed), or a RunError naming the file.
inline std::string saved(const tinyattn::io::Metadata& meta, const std::string& key, const std::string& file) {
  const auto found = meta.find(key);
  if (found == meta.end()) throw RunError(file + ": metadata '" + key + "' is missing");
  return tinyattn::io::detail::unquoted(found->second);
}
inline double saved_number(const tinyattn::io::Metadata& meta, const std::string& key, const std::string& file) {
  const std::string text = saved(meta, key, file);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value))
    throw RunError(file + ": metadata '" + key + "' is '" + text + "', expected a number");
  return value;
}

inline tinyattn::io::Metadata run_metadata(const std::string& task, const TrainSettings& s, std::int64_t epochs) {
  return {{"task", "\"" + task + "\""},
          {"seed", std::to_string(s.seed)},
          {"epochs", std::to_string(epochs)},
          {"lr", number_text(s.adamw.lr)},
          {"weight_decay", number_text(s.adamw.weight_decay)},
          {"beta1", number_text(s.adamw.beta1)},
          {"beta2", number_text(s.adamw.beta2)},
          {"eps", number_text(s.adamw.eps)},
          {"batch_size", std::to_string(s.batch_size)},
          {"eval_every", std::to_string(s.eval_every)},
          {"optimizer", "\"AdamW\""}};
}

// ---- commands --------------------------------------------------------------------------------------------
template <class E>
tinyattn::TrainerOptions trainer_options(const TrainSettings& s) {
  tinyattn::TrainerOptions options;
  options.adamw = s.adamw;
  options.batch_size = s.batch_size;
  options.shuffle_seed = s.seed;
  options.eval_every = s.eval_every;
  return options;
}

template <class E>
int train(const E& experiment, const TrainSettings& s) {
  using Net = typename E::Net;
  const std::string& dir = s.out;
  prepare_output_directory(dir);
  const tinyattn::TokenBatch train_set = experiment.train(), test_set = experiment.test();
  Net net(s.seed);
  tinyattn::Trainer<Net> trainer(net, train_set, test_set, trainer_options<E>(s));
  std::vector<CurveRow> rows;
  if (!s.resume.empty()) {
    tinyattn::io::load_checkpoint(trainer, join(s.resume, "checkpoint.safetensors"));
    rows = read_curves_csv(join(s.resume, "curves.csv"));
    // curves.csv is written before the checkpoint, so after a crash between the two it may hold epochs
    // past the checkpoint: those are recomputed, identically.
    if (static_cast<std::int64_t>(rows.size()) < trainer.epochs())
      throw RunError(join(s.resume, "curves.csv") + " has " + std::to_string(rows.size()) + " epochs, the checkpoint " +
                     std::to_string(trainer.epochs()));
    rows.resize(static_cast<std::size_t>(trainer.epochs()));
    std::printf("resuming from %s at epoch %lld\n", s.resume.c_str(), static_cast<long long>(trainer.epochs()));
  }
  const std::int64_t first = trainer.epochs() + 1;
  if (first > s.epochs + 1)
    throw RunError("the checkpoint is at epoch " + std::to_string(first - 1) + ", past --epochs " +
                   std::to_string(s.epochs));
  std::printf(
      "training %s (%zu parameters, %s engine) on %s: %d train / %d test samples, epochs %lld..%lld, %s, "
      "AdamW lr %g, weight decay %g, betas (%g, %g), seed %llu, test every %lld epochs\n",
      E::title, Net::parameter_count, tinyattn::to_string(trainer.engine()),
      tinyattn::Primitives<typename Net::backend_type>::name(), train_set.size(), test_set.size(),
      static_cast<long long>(first), static_cast<long long>(s.epochs),
      s.batch_size > 0 ? ("minibatches of " + std::to_string(s.batch_size)).c_str() : "full batch", s.adamw.lr,
      s.adamw.weight_decay, s.adamw.beta1, s.adamw.beta2, static_cast<unsigned long long>(s.seed),
      static_cast<long long>(s.eval_every));
  std::fflush(stdout);

  const std::string checkpoint = join(dir, "checkpoint.safetensors"), curves = join(dir, "curves.csv");
  const auto meta = [&](std::int64_t epochs) {
    tinyattn::io::Metadata m = run_metadata(E::name, s, epochs);
    for (const auto& [key, value] : experiment.metadata()) m[key] = value;
    return m;
  };
  // The curves first: a crash between the two writes leaves curves ahead of the checkpoint, which
  // --resume accepts, never behind it.
  const auto save_checkpoint = [&] {
    write_curves_csv(curves, rows);
    tinyattn::io::save_checkpoint(trainer, checkpoint, meta(trainer.epochs()));
  };
  install_stop_handlers();
  Progress progress(first, s.epochs);
  try {
    trainer.run(s.epochs - first + 1, [&](const tinyattn::EpochMetrics& m) {
      rows.push_back(curve_row(m));
      progress.update(m);
      if (s.checkpoint_every > 0 && m.epoch % s.checkpoint_every == 0) save_checkpoint();
      return g_stop_signal.load() == 0;
    });
  } catch (const tinyattn::DivergenceError& e) {
    progress.interrupt();
    tinyattn::io::save_weights(net, join(dir, "weights.safetensors"), meta(e.epoch() - 1));
    write_curves_csv(curves, rows);
    throw RunError(std::string(e.what()) + "; last good weights saved to " + join(dir, "weights.safetensors"));
  }
  if (const int signal = g_stop_signal.load()) {
    progress.interrupt();
    save_checkpoint();
    std::fprintf(
        stderr,
        "interrupted (%s) after epoch %lld: checkpoint saved; continue with: %s train --resume %s --epochs %lld\n",
        signal == SIGINT ? "SIGINT" : "SIGTERM", static_cast<long long>(trainer.epochs()), E::name, dir.c_str(),
        static_cast<long long>(s.epochs));
    return 130;
  }
  const double seconds = progress.seconds();
  // The final test figures: the last row's, or (with --eval-every K, when the last epoch was not due) a
  // fresh evaluation, which goes to the summary and the weights' metadata only: curves.csv keeps
  // exactly the epochs K divides, so that a resumed run writes the same file as an uninterrupted one.
  double final_test_loss = rows.empty() ? std::nan("") : rows.back().test_loss;
  double final_test_acc = rows.empty() ? std::nan("") : rows.back().test_acc;
  if (!rows.empty() && test_set.size() > 0 && std::isnan(final_test_loss)) {
    const tinyattn::Evaluation test = trainer.evaluate_test();
    final_test_loss = test.loss, final_test_acc = test.accuracy;
  }
  std::vector<std::string> files{"weights.safetensors", "curves.csv"};
  tinyattn::io::Metadata final_meta = meta(trainer.epochs());
  if (!rows.empty()) {
    final_meta["train_accuracy"] = number_text(rows.back().train_acc);
    final_meta["test_accuracy"] = number_text(final_test_acc);
    final_meta["test_loss"] = number_text(final_test_loss);
  }
  tinyattn::io::save_weights(net, join(dir, "weights.safetensors"), final_meta);
  write_curves_csv(curves, rows);
  if (s.checkpoint_every > 0) save_checkpoint();
  bool gnuplot = experiment.figures(net, rows, dir, s.plot, files);  // first: .npy and .csv survive a failing gnuplot
  gnuplot = write_curves_figure(s.plot ? rows : std::vector<CurveRow>{}, std::string(E::title) + ": accuracy and loss",
                                dir, files) &&
            gnuplot;
  if (s.plot && !gnuplot) warn_no_gnuplot();
  const std::int64_t ran = s.epochs - first + 1;
  std::printf("done: %lld epochs in %.2f s (%.2f ms/epoch)", static_cast<long long>(ran), seconds,
              ran > 0 ? 1000 * seconds / static_cast<double>(ran) : 0.0);
  if (!rows.empty())
    std::printf("; train accuracy %.2f%%, test accuracy %.2f%%", 100 * rows.back().train_acc, 100 * final_test_acc);
  std::printf("\nfiles in %s/:", dir.c_str());
  for (const auto& f : files) std::printf(" %s", f.c_str());
  std::printf("\n");
  return 0;
}

// Loss and accuracy over the whole data, the training part and the test part, with the keys the
// PyTorch peer's --eval prints.
template <class E>
int eval(const E& experiment, const typename E::Net& net, bool json) {
  const tinyattn::TokenBatch train_set = experiment.train(), test_set = experiment.test();
  tinyattn::TokenBatch all = train_set;  // training samples then test samples, as the peer's --eval
  all.tokens.insert(all.tokens.end(), test_set.tokens.begin(), test_set.tokens.end());
  all.targets.insert(all.targets.end(), test_set.targets.begin(), test_set.targets.end());
  struct Part {
    const char* prefix;
    tinyattn::Evaluation e;
  };
  const Part parts[] = {
      {"", net.evaluate(all)}, {"train_", net.evaluate(train_set)}, {"test_", net.evaluate(test_set)}};
  if (json) {
    std::printf("{");
    for (const Part& p : parts)
      std::printf("\"%sloss\": %.9g, \"%saccuracy\": %.9g, \"%sscored\": %lld, ", p.prefix, p.e.loss, p.prefix,
                  p.e.accuracy, p.prefix, static_cast<long long>(p.e.samples));
    std::printf("\"wrong\": %lld}\n", static_cast<long long>(parts[0].e.samples - parts[0].e.correct));
    return 0;
  }
  std::printf("%-7s %12s %10s %10s %10s\n", "data", "loss", "accuracy", "scored", "wrong");
  const char* names[] = {"all", "train", "test"};
  for (int i = 0; i < 3; ++i)
    std::printf("%-7s %12.6f %9.4f%% %10lld %10lld\n", names[i], parts[i].e.loss, 100 * parts[i].e.accuracy,
                static_cast<long long>(parts[i].e.samples),
                static_cast<long long>(parts[i].e.samples - parts[i].e.correct));
  return 0;
}

// ---- the command line ------------------------------------------------------------------------------------
template <class E>
std::set<std::string> with_data_flags(std::set<std::string> flags) {
  for (const std::string& f : E::data_flags()) flags.insert(f);
  return flags;
}

template <class E>
TrainSettings parse_train(const Arguments& args, const tinyattn::io::Metadata* saved_meta, const std::string& file) {
  TrainSettings s = E::defaults();
  s.epochs = args.integer("--epochs", 0, 100'000'000).value_or(s.epochs);
  s.seed = static_cast<std::uint64_t>(args.integer("--seed", 0, std::numeric_limits<std::int64_t>::max()).value_or(0));
  s.adamw.lr = args.number("--lr", 0.0, 10.0, true).value_or(s.adamw.lr);
  s.adamw.weight_decay = args.number("--weight-decay", 0.0, 1e6, false).value_or(s.adamw.weight_decay);
  s.adamw.beta1 = args.number("--beta1", 0.0, 0.999999, false).value_or(s.adamw.beta1);
  s.adamw.beta2 = args.number("--beta2", 0.0, 0.999999, false).value_or(s.adamw.beta2);
  s.batch_size = static_cast<tinyattn::index_t>(args.integer("--batch-size", 0, 1'000'000'000).value_or(s.batch_size));
  s.eval_every = args.integer("--eval-every", 1, 100'000'000).value_or(s.eval_every);
  s.checkpoint_every = args.integer("--checkpoint-every", 1, 100'000'000).value_or(0);
  s.resume = args.text("--resume").value_or("");
  s.out = args.text("--out").value_or(s.resume.empty() ? std::string(E::name) + "-out" : s.resume);
  s.plot = !args.has("--no-plot");
  if (saved_meta) {  // resuming: the run's settings come from the checkpoint; flags may only agree
    const auto agree = [&](const char* flag, double given, double value, const char* key) {
      if (args.has(flag) && given != value)
        throw UsageError(std::string(flag) + " differs from the checkpoint's " + key + " " + number_text(value));
    };
    const double seed = saved_number(*saved_meta, "seed", file), lr = saved_number(*saved_meta, "lr", file),
                 wd = saved_number(*saved_meta, "weight_decay", file), b1 = saved_number(*saved_meta, "beta1", file),
                 b2 = saved_number(*saved_meta, "beta2", file), eps = saved_number(*saved_meta, "eps", file),
                 batch = saved_number(*saved_meta, "batch_size", file),
                 every = saved_number(*saved_meta, "eval_every", file);
    agree("--seed", static_cast<double>(s.seed), seed, "seed");
    agree("--lr", s.adamw.lr, lr, "lr");
    agree("--weight-decay", s.adamw.weight_decay, wd, "weight_decay");
    agree("--beta1", s.adamw.beta1, b1, "beta1");
    agree("--beta2", s.adamw.beta2, b2, "beta2");
    agree("--batch-size", s.batch_size, batch, "batch_size");
    agree("--eval-every", static_cast<double>(s.eval_every), every, "eval_every");
    s.seed = static_cast<std::uint64_t>(seed);
    s.adamw = {lr, wd, b1, b2, eps};
    s.batch_size = static_cast<tinyattn::index_t>(batch);
    s.eval_every = static_cast<std::int64_t>(every);
  }
  return s;
}

// Whether the experiment has a `sweep` command (E::Sweep).
template <class E, class = void>
struct has_sweep : std::false_type {};
template <class E>
struct has_sweep<E, std::void_t<typename E::Sweep>> : std::true_type {};

template <class E>
std::string command_list() {
  return has_sweep<E>::value ? "train, sweep, eval, plot or predict" : "train, eval, plot or predict";
}

template <class E>
int run_command(const std::string& command, const std::vector<std::string>& words) {
  using Net = typename E::Net;
  if constexpr (has_sweep<E>::value) {
    if (command == "sweep") return sweep_command<typename E::Sweep>(words);
  }
  if (command == "train") {
    const Arguments args(
        words,
        with_data_flags<E>({"--epochs", "--seed", "--lr", "--weight-decay", "--beta1", "--beta2", "--batch-size",
                            "--eval-every", "--out", "--checkpoint-every", "--resume", "--threads"}),
        {"--no-plot"});
    if (!args.positional().empty())
      throw UsageError("train takes no positional argument, found '" + args.positional()[0] + "'");
    if (const auto threads = args.integer("--threads", 1, 4096)) tinyattn::set_cpu_threads(static_cast<int>(*threads));
    std::optional<tinyattn::io::SafetensorsFile> checkpoint;
    std::string file;
    if (const auto resume = args.text("--resume")) {
      file = join(*resume, "checkpoint.safetensors");
      checkpoint = tinyattn::io::SafetensorsFile::load(file);
    }
    const tinyattn::io::Metadata* saved_meta = checkpoint ? &checkpoint->metadata() : nullptr;
    const TrainSettings s = parse_train<E>(args, saved_meta, file);
    const E experiment(args, saved_meta);
    return train(experiment, s);
  }
  if (command == "eval" || command == "plot" || command == "predict") {
    std::set<std::string> flags{"--weights"};
    if (command == "eval") flags = with_data_flags<E>(flags);
    if (command == "plot") flags.insert("--out");
    const Arguments args(words, flags, command == "eval" ? std::set<std::string>{"--json"} : std::set<std::string>{});
    const auto weights = args.text("--weights");
    if (!weights) throw UsageError(command + " needs --weights FILE");
    if (command != "predict" && !args.positional().empty())
      throw UsageError(command + " takes no positional argument, found '" + args.positional()[0] + "'");
    Net net;
    const tinyattn::io::Metadata meta = tinyattn::io::load_weights(net, *weights);
    if (command == "predict") return E(args, &meta).predict(net, args.positional());
    if (command == "eval") return eval(E(args, &meta), net, args.has("--json"));
    const std::string out = args.text("--out").value_or(std::string(E::name) + "-out");
    prepare_output_directory(out);
    std::vector<std::string> files;
    bool gnuplot = E(args, &meta).figures(net, {}, out, true, files);
    const std::string beside = join(std::filesystem::path(*weights).parent_path().string(), "curves.csv");
    if (std::filesystem::exists(beside))
      gnuplot =
          write_curves_figure(read_curves_csv(beside), std::string(E::title) + ": accuracy and loss", out, files) &&
          gnuplot;
    if (!gnuplot) warn_no_gnuplot();
    std::printf("files in %s/:", out.c_str());
    for (const auto& f : files) std::printf(" %s", f.c_str());
    std::printf("\n");
    return 0;
  }
  throw UsageError("unknown command '" + command + "'; expected " + command_list<E>());
}

template <class E>
int main_checked(int argc, char** argv) {
  std::vector<std::string> words(argv + 1, argv + argc);
  if (words.empty()) throw UsageError("missing command: " + command_list<E>());
  const std::string command = words.front();
  words.erase(words.begin());
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(E::usage().c_str(), stdout);
    return 0;
  }
  if (command == "--version") {
    if (has_sweep<E>::value)
      std::printf("%s (tinyattn) 0.2.0; sweep across processes with MPI: %s\n", E::name,
                  built_with_mpi() ? "yes" : "no (built without)");
    else
      std::printf("%s (tinyattn) 0.2.0\n", E::name);
    return 0;
  }
  if (command != "train" && command != "eval" && command != "plot" && command != "predict" &&
      !(command == "sweep" && has_sweep<E>::value))
    throw UsageError("unknown command '" + command + "'; expected " + command_list<E>());
  for (const auto& w : words)
    if (w == "--help" || w == "-h") {
      std::fputs(E::usage().c_str(), stdout);
      return 0;
    }
  return run_command<E>(command, words);
}

// The whole program: exit status 2 for usage errors, 1 for run-time errors.
template <class E>
int run_program(int argc, char** argv) {
  try {
    return main_checked<E>(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n(run '%s --help' for usage)\n", E::name, e.what(), E::name);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", E::name, e.what());
    return 1;
  }
}

}  // namespace programs
