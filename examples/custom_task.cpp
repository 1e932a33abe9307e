// custom_task — a task of your own: sort 5 digits. Built as a TokenBatch, trained, inspected, saved.
//
//   tokens   d0 d1 d2 d3 d4 SEP s0 s1 s2 s3      (digits 0..9, SEP = 10; s = the digits sorted)
//   targets  -1 -1 -1 -1 -1 s0  s1 s2 s3 s4      (-1: not scored; SEP and each sorted digit predict the next)
//
// Two causal attention-only layers, loss at every scored position. Prints the accuracy per epoch,
// then how much the last layer's heads attend to the digit each output copies.
//
//   ./custom_task [epochs]            (default 100; seconds)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tinyattn/io/weights.hpp"
#include "tinyattn/tinyattn.hpp"

using namespace tinyattn;

constexpr index_t kDigits = 5, kSep = 10, kT = 2 * kDigits;  // the last sorted digit is only a target

// n random sequences and their targets, the same for the same seed (CPython's random.Random).
TokenBatch sorting_batch(index_t n, std::uint64_t seed) {
  PythonRandom random(seed);
  TokenBatch batch;
  batch.context = kT;
  for (index_t i = 0; i < n; ++i) {
    std::vector<index_t> digits(kDigits);
    for (auto& d : digits) d = static_cast<index_t>(random.randrange(10));
    std::vector<index_t> sorted = digits;
    std::sort(sorted.begin(), sorted.end());
    std::vector<index_t> sequence = digits;                             // d0..d4
    sequence.push_back(kSep);                                           // SEP
    sequence.insert(sequence.end(), sorted.begin(), sorted.end() - 1);  // s0..s3
    batch.tokens.insert(batch.tokens.end(), sequence.begin(), sequence.end());
    for (index_t t = 0; t < kT; ++t)
      batch.targets.push_back(t < kDigits ? -1 : sorted[static_cast<std::size_t>(t - kDigits)]);
  }
  return batch;
}

int main(int argc, char** argv) {
  const long epochs = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 100;
  if (epochs < 1) {
    std::fprintf(stderr, "custom_task: epochs must be a positive integer, found '%s'\n", argv[1]);
    return 2;
  }
  using Net = Transformer<Shape</*vocab*/ 11, /*d_model*/ 64, /*heads*/ 4, /*context*/ kT>,
                          Architecture<n_layers<2>, causal_mask, loss_at_every_position>>;
  Net net(/*seed=*/0);
  const TokenBatch train = sorting_batch(2000, 1), test = sorting_batch(500, 2);

  TrainerOptions options;  // AdamW: PyTorch's defaults, but a larger step for a short run
  options.adamw.lr = 3e-3;
  options.eval_every = 10;
  Trainer<Net> trainer(net, train, test, options);
  trainer.run(epochs, [&](const EpochMetrics& m) {
    if (m.tested())
      std::printf("epoch %4lld  train acc %6.2f%%  test acc %6.2f%%\n", static_cast<long long>(m.epoch),
                  100 * m.train_accuracy, 100 * m.test_accuracy);
    return true;
  });

  // Look inside: how much of each layer-1 head's attention, at each output position, lands on the input
  // digits equal to the digit it must write (a head that sorts by copying reads exactly those).
  const ActivationCache cache = net.inspect(test, {"blocks.1.attn.hook_pattern"});
  const auto& pattern = cache["blocks.1.attn.hook_pattern"].values;  // (N, H, T, T)
  std::printf("\nlayer 1, attention on the input digits equal to the output digit:\n");
  for (index_t q = kDigits; q < kT; ++q) {
    std::printf("  writing s%d:", q - kDigits);
    for (index_t h = 0; h < Net::heads; ++h) {
      double sum = 0;
      for (index_t n = 0; n < test.size(); ++n)
        for (index_t k = 0; k < kDigits; ++k)
          if (test.sample(n)[k] == test.target(n, q))
            sum += pattern[((static_cast<std::size_t>(n) * Net::heads + h) * kT + q) * kT + k];
      std::printf("  head %d %.2f", h, sum / test.size());
    }
    std::printf("\n");
  }
  io::save_weights(net, "custom_task.safetensors");  // TransformerLens names; the configuration in the metadata
  std::printf("weights: custom_task.safetensors\n");
  return 0;
}
