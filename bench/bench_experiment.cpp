// bench_experiment — the reference experiment (750 epochs, test evaluation every epoch) timed end to
// end, for side-by-side comparison with the PyTorch reference (bench/run_bench.sh).
//
//   bench_experiment [--epochs N] [--threads N] [--seed S] [--phases 1]   prints one JSON line
// --phases 1 also times the two halves of an epoch alone: the training pass (tables, forward,
// backward; no step) and the test evaluation (tables already fresh), each repeated --epochs times.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tinyattn/tinyattn.hpp"
#if defined(TINYATTN_BENCH_CUDA)
#include <cuda_runtime.h>

#include "tinyattn/backend/thrust.hpp"
using Backend = tinyattn::backend::thrust;
#else
using Backend = tinyattn::backend::cpu;
#endif

int main(int argc, char** argv) {
  long epochs = 750, threads = 0, seed = 0, phases = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    char* end = nullptr;
    const long value = std::strtol(argv[i + 1], &end, 10);
    if (*end != '\0' || value < 0) {
      std::fprintf(stderr, "bench_experiment: %s expects a non-negative integer, found '%s'\n", flag.c_str(),
                   argv[i + 1]);
      return 2;
    }
    if (flag == "--epochs")
      epochs = value;
    else if (flag == "--threads")
      threads = value;
    else if (flag == "--seed")
      seed = value;
    else if (flag == "--phases")
      phases = value;
    else {
      std::fprintf(stderr, "bench_experiment: unknown option '%s' (--epochs, --threads, --seed, --phases)\n",
                   flag.c_str());
      return 2;
    }
  }
  if (threads > 0) tinyattn::set_cpu_threads(static_cast<int>(threads));
  using Net = tinyattn::AttentionNetwork<tinyattn::ReferenceShape, Backend>;
  const auto setup_start = std::chrono::steady_clock::now();
  const tinyattn::MinMaxTask task(128, static_cast<std::uint64_t>(seed));
  Net net(static_cast<std::uint64_t>(seed));
  tinyattn::TrainerOptions options;
  options.adamw = tinyattn::MinMaxTask::adamw();
  tinyattn::Trainer<Net> trainer(net, task.train(), task.test(), options);
  const double setup = std::chrono::duration<double>(std::chrono::steady_clock::now() - setup_start).count();
  const auto start = std::chrono::steady_clock::now();
  const tinyattn::EpochMetrics last = trainer.run(epochs);
#if defined(TINYATTN_BENCH_CUDA)
  cudaDeviceSynchronize();
#endif
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double train_ms = 0, eval_ms = 0;
  if (phases) {
    auto now = [] {
#if defined(TINYATTN_BENCH_CUDA)
      cudaDeviceSynchronize();
#endif
      return std::chrono::steady_clock::now();
    };
    const auto t0 = now();
    for (long e = 0; e < epochs; ++e) {
      net.mark_modified();  // as after a step: the tables are rebuilt
      trainer.compute_gradients();
    }
    const auto t1 = now();
    for (long e = 0; e < epochs; ++e) trainer.evaluate_test();
    const auto t2 = now();
    train_ms = 1000 * std::chrono::duration<double>(t1 - t0).count() / epochs;
    eval_ms = 1000 * std::chrono::duration<double>(t2 - t1).count() / epochs;
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf(
      "{\"backend\": \"%s\", \"threads\": %d, \"epochs\": %ld, \"seconds\": %.6f, \"setup_seconds\": %.6f, "
      "\"ms_per_epoch\": %.6f, \"peak_rss_mb\": %.2f, \"train_acc\": %.6f, \"test_acc\": %.6f, "
      "\"logit_path\": \"%s\", \"score_path\": \"%s\", \"train_pass_ms\": %.4f, \"eval_pass_ms\": %.4f}\n",
      tinyattn::Primitives<Backend>::name(), tinyattn::cpu_threads(), epochs, seconds, setup,
      epochs ? 1000 * seconds / epochs : 0.0, usage.ru_maxrss / 1024.0, last.train_accuracy, last.test_accuracy,
      tinyattn::to_string(trainer.logit_path()), tinyattn::to_string(trainer.score_path()), train_ms, eval_ms);
  return 0;
}
