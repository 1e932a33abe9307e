// bench_threads — ms per epoch on one thread and on every thread (tinyattn::ScopedCpuThreads), for a
// small task of a user's own and for the two classic configurations: does a second thread ever make an
// epoch slower? (bench/RESULTS.md, "Threads".)
//
//   bench_threads [rounds]     (default 3; the two counts alternate, the median of each is printed)
//
// small      the new user's task: sorting 5 digits, 264 training and 66 test sequences, two causal
//            attention-only layers (V 11, D 64, 4 heads, T 10), loss at every scored position,
//            full batch, test every epoch
// reference  the reference experiment (min/max, 10,922 training inputs, test every epoch)
// grokking   the grokking configuration (modular addition, MLP 512, 3,830 training pairs, test every 100)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tinyattn/tinyattn.hpp"

namespace {

using namespace tinyattn;

TokenBatch sorting_batch(index_t n, std::uint64_t seed) {
  constexpr index_t kDigits = 5, kSep = 10, kT = 2 * kDigits;
  PythonRandom random(seed);
  TokenBatch batch;
  batch.context = kT;
  for (index_t i = 0; i < n; ++i) {
    std::vector<index_t> digits(kDigits);
    for (auto& d : digits) d = static_cast<index_t>(random.randrange(10));
    std::vector<index_t> sorted = digits;
    std::sort(sorted.begin(), sorted.end());
    batch.tokens.insert(batch.tokens.end(), digits.begin(), digits.end());
    batch.tokens.push_back(kSep);
    batch.tokens.insert(batch.tokens.end(), sorted.begin(), sorted.end() - 1);
    for (index_t t = 0; t < kT; ++t)
      batch.targets.push_back(t < kDigits ? -1 : sorted[static_cast<std::size_t>(t - kDigits)]);
  }
  return batch;
}

// ms per epoch of `epochs` epochs from fresh weights (after one untimed epoch: tables, buffers, threads).
template <class Net>
double ms_per_epoch(const TokenBatch& train, const TokenBatch& test, const TrainerOptions& options, int epochs) {
  Net net(0);
  Trainer<Net> trainer(net, train, test, options);
  trainer.run(1);
  const auto start = std::chrono::steady_clock::now();
  trainer.run(epochs);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / epochs;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class Net>
void compare(const char* name, const TokenBatch& train, const TokenBatch& test, const TrainerOptions& options,
             int epochs, int rounds) {
  const int all = cpu_threads();
  std::vector<double> one, every;
  for (int r = 0; r < rounds; ++r) {
    {
      const ScopedCpuThreads single(1);
      one.push_back(ms_per_epoch<Net>(train, test, options, epochs));
    }
    every.push_back(ms_per_epoch<Net>(train, test, options, epochs));
  }
  std::printf("%-10s 1 thread: %8.3f ms/epoch   %d threads: %8.3f ms/epoch   (%d epochs x %d rounds; %s)   runs:", name,
              median(one), all, median(every), epochs, rounds, median(every) <= median(one) ? "not slower" : "SLOWER");
  for (int r = 0; r < rounds; ++r)
    std::printf(" %.3f/%.3f", one[static_cast<std::size_t>(r)], every[static_cast<std::size_t>(r)]);
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  if (rounds < 1) {
    std::fprintf(stderr, "bench_threads: rounds must be a positive integer, found '%s'\n", argv[1]);
    return 2;
  }
  {
    using Net = Transformer<Shape<11, 64, 4, 10>, Architecture<n_layers<2>, causal_mask, loss_at_every_position>>;
    TrainerOptions options;
    options.adamw.lr = 3e-3;
    compare<Net>("small", sorting_batch(264, 1), sorting_batch(66, 2), options, 200, rounds);
  }
  {
    using Net = AttentionNetwork<ReferenceShape>;
    const MinMaxTask task(128, 0);
    TrainerOptions options;
    options.adamw = MinMaxTask::adamw();
    compare<Net>("reference", task.train(), task.test(), options, 100, rounds);
  }
  {
    using Net = Transformer<Shape<114, 128, 4, 3>, Architecture<mlp<512>, untied_unembedding, output_vocab<113>>>;
    const ModularAdditionTask task;
    TrainerOptions options;
    options.adamw = ModularAdditionTask::adamw();
    options.eval_every = 100;
    compare<Net>("grokking", task.train(), task.test(), options, 50, rounds);
  }
  return 0;
}
