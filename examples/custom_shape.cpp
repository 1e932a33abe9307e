// custom_shape — a differently shaped network on the same task: 4 heads, D = 64.
//
// The shape is four template arguments; everything else (buffer sizes, head_dim = 16, the cheapest
// exact evaluation order) follows at compile time. Prints the accuracy reached.
//
//   ./custom_shape [epochs]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "tinyattn/tinyattn.hpp"

int main(int argc, char** argv) {
  using Shape = tinyattn::Shape</*vocab*/ 131, /*d_model*/ 64, /*heads*/ 4, /*context*/ 4>;
  using Net = tinyattn::AttentionNetwork<Shape, tinyattn::backend::cpu>;
  const long epochs = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 750;
  if (epochs < 1) {
    std::fprintf(stderr, "custom_shape: epochs must be a positive integer, found '%s'\n", argv[1]);
    return 2;
  }

  const tinyattn::MinMaxTask task(/*max_n=*/128, /*seed=*/0);
  Net net(/*seed=*/0);
  tinyattn::TrainerOptions options;
  options.adamw = tinyattn::MinMaxTask::adamw();  // the reference experiment's optimizer
  tinyattn::Trainer<Net> trainer(net, task.train(), task.test(), options);
  std::printf("Shape<131, 64, 4, 4>: %zu parameters, head_dim %d, logits via %s, scores via %s\n", Net::parameter_count,
              Net::head_dim, tinyattn::to_string(trainer.logit_path()), tinyattn::to_string(trainer.score_path()));

  const auto start = std::chrono::steady_clock::now();
  const tinyattn::EpochMetrics last = trainer.run(epochs, [&](const tinyattn::EpochMetrics& m) {
    if (m.epoch % 150 == 0)
      std::printf("epoch %4lld  train %.4f  test %.4f\n", static_cast<long long>(m.epoch), m.train_accuracy,
                  m.test_accuracy);
    return true;
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("after %ld epochs (%.2f s): train accuracy %.2f%%, test accuracy %.2f%%\n", epochs, seconds,
              100 * last.train_accuracy, 100 * last.test_accuracy);
  return 0;
}
