// bench_transformer — the classic experiments' configurations timed per epoch, for side-by-side
// comparison with the PyTorch peer's presets (bench/run_transformer_bench.py).
//
//   bench_transformer --preset grokking|induction [--epochs N] [--threads N] [--eval-every K] [--engine E]
//
// grokking:  (a + b) mod 113, 1 layer, 4 heads, D 128, MLP 512 ReLU, untied 114 -> 113, full batch of
//            3,830, AdamW lr 1e-3, wd 1, betas (0.9, 0.98) — the peer's --preset grokking
// induction: V 64, T 32, 2 layers, 4 heads, D 64, attention only, causal, biases, untied, loss on the
//            repeated half, 4,096 + 1,024 sequences, AdamW lr 1e-3, wd 0.01 — the peer's --preset induction
// An epoch is one step (or the minibatch steps) plus, every K epochs (default 1, as the peer), a full
// evaluation of the test set. Prints one JSON line. One untimed epoch first (first touch of buffers).
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tinyattn/tinyattn.hpp"

namespace {

using tinyattn::index_t;

struct Options {
  std::string preset;
  long epochs = 20, threads = 0, eval_every = 1;
  tinyattn::Engine engine = tinyattn::Engine::automatic;
};

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

template <class Net>
int measure(const Options& o, const tinyattn::TokenBatch& train, const tinyattn::TokenBatch& test,
            const tinyattn::AdamWConfig& adamw) {
  Net net(0);
  tinyattn::TrainerOptions options;
  options.adamw = adamw;
  options.eval_every = o.eval_every;
  options.engine = o.engine;
  tinyattn::Trainer<Net> trainer(net, train, test, options);
  trainer.run(1);
  const auto start = std::chrono::steady_clock::now();
  const tinyattn::EpochMetrics last = trainer.run(o.epochs);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto json_number = [](double x) {  // JSON has no NaN: the test set not evaluated at the last epoch
    char text[32];
    std::snprintf(text, sizeof text, "%.6f", x);
    return std::isnan(x) ? std::string("null") : std::string(text);
  };
  std::printf(
      "{\"preset\": \"%s\", \"backend\": \"cpu\", \"engine\": \"%s\", \"threads\": %d, \"epochs\": %ld, "
      "\"eval_every\": %ld, \"seconds\": %.6f, \"ms_per_epoch\": %.4f, \"params\": %zu, \"train_loss\": %.6f, "
      "\"train_acc\": %.6f, \"test_loss\": %s, \"test_acc\": %s, \"peak_rss_mb\": %.2f}\n",
      o.preset.c_str(), tinyattn::to_string(trainer.engine()), tinyattn::cpu_threads(), o.epochs, o.eval_every, seconds,
      1000.0 * seconds / static_cast<double>(o.epochs), Net::parameter_count, last.train_loss, last.train_accuracy,
      json_number(last.test_loss).c_str(), json_number(last.test_accuracy).c_str(), peak_rss_mb());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "bench_transformer: %s needs a value\n", flag.c_str());
      return 2;
    }
    const std::string value = argv[i + 1];
    if (flag == "--preset") {
      o.preset = value;
    } else if (flag == "--engine") {
      if (value == "reference")
        o.engine = tinyattn::Engine::reference;
      else if (value == "table")
        o.engine = tinyattn::Engine::table;
      else if (value != "automatic") {
        std::fprintf(stderr, "bench_transformer: --engine expects automatic, reference or table, found '%s'\n",
                     value.c_str());
        return 2;
      }
    } else {
      char* end = nullptr;
      const long n = std::strtol(value.c_str(), &end, 10);
      if (*end != '\0' || n < 0) {
        std::fprintf(stderr, "bench_transformer: %s expects a non-negative integer, found '%s'\n", flag.c_str(),
                     value.c_str());
        return 2;
      }
      if (flag == "--epochs")
        o.epochs = n;
      else if (flag == "--threads")
        o.threads = n;
      else if (flag == "--eval-every" && n >= 1)
        o.eval_every = n;
      else {
        std::fprintf(stderr,
                     "bench_transformer: unknown option '%s' or bad value (--preset, --epochs, --threads, "
                     "--eval-every >= 1, --engine)\n",
                     flag.c_str());
        return 2;
      }
    }
  }
  if (o.threads > 0) tinyattn::set_cpu_threads(static_cast<int>(o.threads));
  if (o.preset == "grokking") {
    using Arch = tinyattn::Architecture<tinyattn::mlp<512>, tinyattn::untied_unembedding, tinyattn::output_vocab<113>>;
    using Net = tinyattn::Transformer<tinyattn::Shape<114, 128, 4, 3>, Arch>;
    const tinyattn::ModularAdditionTask task(113, 0.3, 598);
    return measure<Net>(o, task.train(), task.test(), tinyattn::ModularAdditionTask::adamw());
  }
  if (o.preset == "induction") {
    using Arch = tinyattn::Architecture<tinyattn::n_layers<2>, tinyattn::causal_mask, tinyattn::trainable_biases,
                                        tinyattn::untied_unembedding, tinyattn::loss_at_every_position>;
    using Net = tinyattn::Transformer<tinyattn::Shape<64, 64, 4, 32>, Arch>;
    const tinyattn::InductionTask task(64, 32, 4096, 1024, 598);
    return measure<Net>(o, task.train(), task.test(), tinyattn::AdamWConfig{1e-3, 0.01, 0.9, 0.99, 1e-8});
  }
  std::fprintf(stderr, "bench_transformer: --preset grokking or induction is required\n");
  return 2;
}
