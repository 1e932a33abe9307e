// bench_scaling — how the cost grows with the shape: ms/epoch (train step + test evaluation) for
// operand ranges max_n = 64, 128, 256 (vocabulary and dataset grow), d_model 32/64/128, heads 1/2/4.
// Prints one JSON line per shape; bench/run_bench.sh puts the PyTorch reference beside them.
//   bench_scaling [--epochs N] [--repeats R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tinyattn/tinyattn.hpp"

template <int MaxN, int D, int H>
void measure(long epochs, int repeats) {
  using Net = tinyattn::AttentionNetwork<tinyattn::Shape<MaxN + 3, D, H, 4>>;
  const tinyattn::MinMaxTask task(MaxN, 0);
  std::vector<double> ms;
  std::string logit, score;
  for (int r = 0; r < repeats; ++r) {
    Net net(0);
    tinyattn::TrainerOptions options;
    options.adamw = tinyattn::MinMaxTask::adamw();
    tinyattn::Trainer<Net> trainer(net, task.train(), task.test(), options);
    trainer.run(1);  // warm up: first touch of every buffer
    const auto start = std::chrono::steady_clock::now();
    trainer.run(epochs);
    ms.push_back(1000 * std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / epochs);
    logit = tinyattn::to_string(trainer.logit_path());
    score = tinyattn::to_string(trainer.score_path());
  }
  std::sort(ms.begin(), ms.end());
  std::printf(
      "{\"max_n\": %d, \"vocab\": %d, \"d_model\": %d, \"heads\": %d, \"train\": %d, \"test\": %d, "
      "\"ms_per_epoch_median\": %.4f, \"logit_path\": \"%s\", \"score_path\": \"%s\"}\n",
      MaxN, MaxN + 3, D, H, static_cast<int>(task.train_indices().size()), static_cast<int>(task.test_indices().size()),
      ms[ms.size() / 2], logit.c_str(), score.c_str());
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  long epochs = 50;
  int repeats = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const long value = std::strtol(argv[i + 1], nullptr, 10);
    if (value <= 0) {
      std::fprintf(stderr, "bench_scaling: %s expects a positive integer\n", flag.c_str());
      return 2;
    }
    if (flag == "--epochs")
      epochs = value;
    else if (flag == "--repeats")
      repeats = static_cast<int>(value);
    else {
      std::fprintf(stderr, "bench_scaling: unknown option '%s' (--epochs, --repeats)\n", flag.c_str());
      return 2;
    }
  }
  measure<64, 32, 2>(epochs, repeats);
  measure<128, 32, 2>(epochs, repeats);
  measure<256, 32, 2>(epochs, repeats);
  measure<128, 64, 2>(epochs, repeats);
  measure<128, 128, 2>(epochs, repeats);
  measure<128, 32, 1>(epochs, repeats);
  measure<128, 32, 4>(epochs, repeats);
  return 0;
}
