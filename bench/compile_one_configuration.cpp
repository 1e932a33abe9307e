// compile_one_configuration — a translation unit that instantiates one configuration, as a user's program
// would: it trains the model (Trainer::run), evaluates it, reads activations through inspect() and
// writes and reads its weights. bench/run_compile_bench.sh times how long the compiler takes over it
// (Release, one job); running it trains a few epochs so that what was compiled is also shown to work.
//
// TINYATTN_BENCH_CONFIGURATION picks the configuration:
//   1  grokking: 1 layer, 4 heads, D 128, MLP 512 ReLU, untied 114 -> 113 (the peer's --preset grokking)
//   2  induction: 2 layers, 4 heads, D 64, V 64, T 32, causal, biases, untied, loss at every position
//   3  every option on: 2 layers, causal, GELU MLP, LayerNorm, biases, untied, loss at every position
//   4  the reference experiment (AttentionNetwork: V 131, D 32, 2 heads, T 4)
#include <cstdio>
#include <string>

#include "tinyattn/io/weights.hpp"
#include "tinyattn/tinyattn.hpp"

#ifndef TINYATTN_BENCH_CONFIGURATION
#error "define TINYATTN_BENCH_CONFIGURATION (1 to 4): bench/CMakeLists.txt builds one program per configuration"
#endif

namespace {

using tinyattn::TokenBatch;

#if TINYATTN_BENCH_CONFIGURATION == 1
constexpr const char* kName = "grokking";
using Net = tinyattn::Transformer<
    tinyattn::Shape<114, 128, 4, 3>,
    tinyattn::Architecture<tinyattn::mlp<512>, tinyattn::untied_unembedding, tinyattn::output_vocab<113>>>;
TokenBatch train_set() { return tinyattn::ModularAdditionTask().train(); }
TokenBatch test_set() { return tinyattn::ModularAdditionTask().test(); }
#elif TINYATTN_BENCH_CONFIGURATION == 2
constexpr const char* kName = "induction";
using Net = tinyattn::Transformer<
    tinyattn::Shape<64, 64, 4, 32>,
    tinyattn::Architecture<tinyattn::n_layers<2>, tinyattn::causal_mask, tinyattn::trainable_biases,
                           tinyattn::untied_unembedding, tinyattn::loss_at_every_position>>;
TokenBatch train_set() { return tinyattn::InductionTask(64, 32, 256, 64).train(); }
TokenBatch test_set() { return tinyattn::InductionTask(64, 32, 256, 64).test(); }
#elif TINYATTN_BENCH_CONFIGURATION == 3
constexpr const char* kName = "every option on";
using Net = tinyattn::Transformer<
    tinyattn::Shape<16, 24, 3, 8>,
    tinyattn::Architecture<tinyattn::n_layers<2>, tinyattn::causal_mask, tinyattn::mlp<40, tinyattn::Activation::gelu>,
                           tinyattn::layer_norm, tinyattn::trainable_biases, tinyattn::untied_unembedding,
                           tinyattn::loss_at_every_position>>;
TokenBatch train_set() { return tinyattn::InductionTask(16, 8, 256, 64).train(); }
TokenBatch test_set() { return tinyattn::InductionTask(16, 8, 256, 64).test(); }
#elif TINYATTN_BENCH_CONFIGURATION == 4
constexpr const char* kName = "reference experiment";
using Net = tinyattn::AttentionNetwork<tinyattn::Shape<131, 32, 2, 4>, tinyattn::backend::cpu>;
TokenBatch train_set() { return tinyattn::MinMaxTask().train(); }
TokenBatch test_set() { return tinyattn::MinMaxTask().test(); }
#else
#error "TINYATTN_BENCH_CONFIGURATION must be 1, 2, 3 or 4"
#endif

}  // namespace

int main(int argc, char** argv) {
  const std::string weights = argc > 1 ? argv[1] : "compile_one_configuration.safetensors";
  const TokenBatch train = train_set(), test = test_set();
  Net net(0);
  tinyattn::Trainer<Net> trainer(net, train, test, tinyattn::TrainerOptions{});
  const tinyattn::EpochMetrics last = trainer.run(3, [](const tinyattn::EpochMetrics&) { return true; });
  const auto cache = net.inspect(test, {"blocks.0.attn.hook_pattern", "logits"});
  tinyattn::io::save_weights(net, weights, {{"bench", "\"compile_one_configuration\""}});
  Net loaded;
  tinyattn::io::load_weights(loaded, weights);
  const tinyattn::Evaluation before = net.evaluate(test), after = loaded.evaluate(test);
  std::printf("%s: 3 epochs, train loss %.6f, test loss %.6f (%.6f after a save and a load), %zu logits\n", kName,
              last.train_loss, before.loss, after.loss, cache["logits"].values.size());
  return before.loss == after.loss ? 0 : 1;
}
