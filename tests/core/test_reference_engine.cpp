// The reference engine on every layer type: finite-difference gradients in double on odd shapes,
// determinism for any thread count and chunking, minibatch training, evaluation and prediction.
#include "../support/test_support.hpp"

namespace tinyattn::test {
namespace {

// Random parameters around the initial ones: LayerNorm weights away from 1 and biases away from 0, so
// that every term of every backward is exercised.
template <class Net>
void scramble(Net& net, std::uint64_t seed) {
  SplitMix64 bits(seed);
  std::vector<typename Net::scalar_type> p = net.parameters();
  for (const TensorSpec& spec : Net::Layout::tensors()) {
    if (spec.kind == TensorKind::weight) continue;
    for (std::size_t i = 0; i < spec.count(); ++i) {
      const double u = static_cast<double>(bits.next() >> 11) / 9007199254740992.0;  // [0, 1)
      p[spec.offset + i] =
          static_cast<typename Net::scalar_type>((spec.kind == TensorKind::norm_weight ? 1.0 : 0.0) + 0.5 * (u - 0.5));
    }
  }
  net.set_parameters(p);
}

// Central differences on 10 entries of every tensor: |analytic - numeric| <= 1e-6 + 1e-5 |numeric|.
template <class Net>
void check_gradients(const TokenBatch& batch, std::uint64_t seed, index_t batch_size = 0) {
  Net net(seed);
  scramble(net, seed + 1);
  TrainerOptions options;
  options.engine = Engine::reference;
  options.batch_size = batch_size;  // compute_gradients() always takes the whole training set
  Trainer<Net> trainer(net, batch, TokenBatch{}, options);
  REQUIRE(trainer.engine() == Engine::reference);
  trainer.compute_gradients();
  const std::vector<double> analytic = trainer.gradients();
  const std::vector<double> base = net.parameters();
  auto loss_at = [&](const std::vector<double>& params) {
    net.set_parameters(params);
    return trainer.compute_gradients().loss;
  };
  SplitMix64 pick(seed + 2);
  const double h = 1e-5;
  for (const TensorSpec& spec : Net::Layout::tensors()) {
    double worst = 0;
    for (int trial = 0; trial < 10; ++trial) {
      const std::size_t i = spec.offset + pick.next() % spec.count();
      std::vector<double> p = base;
      p[i] = base[i] + h;
      const double up = loss_at(p);
      p[i] = base[i] - h;
      const double down = loss_at(p);
      const double numeric = (up - down) / (2 * h);
      const double error = std::abs(analytic[i] - numeric);
      worst = std::max(worst, error);
      CHECK_MESSAGE(error <= 1e-6 + 1e-5 * std::abs(numeric),
                    spec.name << "[" << i - spec.offset << "]: analytic " << analytic[i] << ", numeric " << numeric);
    }
    MESSAGE(spec.name << ": worst |error| " << worst);
  }
  net.set_parameters(base);
}

using AllOptions = Architecture<n_layers<2>, causal_mask, mlp<16, Activation::gelu>, layer_norm, trainable_biases,
                                untied_unembedding, output_vocab<7>, loss_at_every_position>;

TEST_CASE_TEMPLATE(
    "finite differences: every option on (2 layers, causal, LayerNorm, GELU MLP, biases, untied, "
    "loss at every position)",
    Backend, TINYATTN_TEST_BACKENDS) {
  using Net = Transformer<Shape<11, 12, 3, 5>, AllOptions, Backend, double>;
  static_assert(!ReferenceEngine<Shape<11, 12, 3, 5>, AllOptions, Backend, double>::kProjectionTables,
                "block 0's products through the plain path (after ln1)");
  check_gradients<Net>(random_sequences(11, 7, 5, 120, 31, /*every_position=*/true), 31);
}

TEST_CASE_TEMPLATE("finite differences: targets on the later positions only (the last block's queries start there)",
                   Backend, TINYATTN_TEST_BACKENDS) {
  using Net = Transformer<Shape<11, 12, 3, 6>, AllOptions, Backend, double>;
  TokenBatch batch = random_sequences(11, 7, 6, 120, 36, /*every_position=*/true);
  for (index_t n = 0; n < batch.size(); ++n)
    for (index_t t = 0; t < 3; ++t) batch.targets[static_cast<std::size_t>(n) * 6 + t] = -1;  // scored from position 3
  check_gradients<Net>(batch, 36);
}

TEST_CASE_TEMPLATE("finite differences: ReLU MLP, untied to 6 outputs, d_head 5 with D = 8 and 3 heads", Backend,
                   TINYATTN_TEST_BACKENDS) {
  using Arch = Architecture<mlp<10>, untied_unembedding, output_vocab<6>, head_dim<5>>;
  using Net = Transformer<Shape<9, 8, 3, 4>, Arch, Backend, double>;
  static_assert(Net::head_dim == 5 && Net::vocab_out == 6);
  check_gradients<Net>(random_sequences(9, 6, 4, 150, 32, false), 32);
}

TEST_CASE_TEMPLATE("finite differences: LayerNorm, no biases, tied, loss at every position", Backend,
                   TINYATTN_TEST_BACKENDS) {
  using Net =
      Transformer<Shape<7, 8, 2, 6>, Architecture<layer_norm, no_biases, loss_at_every_position>, Backend, double>;
  check_gradients<Net>(random_sequences(7, 7, 6, 90, 33, true), 33);
}

TEST_CASE_TEMPLATE("finite differences: 3 attention-only causal layers with biases, loss at the last position", Backend,
                   TINYATTN_TEST_BACKENDS) {
  using Arch = Architecture<n_layers<3>, causal_mask, trainable_biases>;
  using Net = Transformer<Shape<13, 8, 2, 4>, Arch, Backend, double>;
  static_assert(ReferenceEngine<Shape<13, 8, 2, 4>, Arch, Backend, double>::kProjectionTables,
                "block 0's q, k, v from the projection tables");
  check_gradients<Net>(random_sequences(13, 13, 4, 100, 34, false), 34);
}

TEST_CASE_TEMPLATE("finite differences: the reference architecture through the reference engine, many chunks", Backend,
                   TINYATTN_TEST_BACKENDS) {
  using Net = Transformer<Shape<17, 12, 3, 5>, ReferenceArchitecture, Backend, double>;
  check_gradients<Net>(random_sequences(17, 17, 5, 900, 35, false), 35);
}

// ---- determinism -----------------------------------------------------------------------------------------
template <class Net>
std::vector<typename Net::scalar_type> train_for(const TokenBatch& train, const TokenBatch& test, index_t batch_size,
                                                 int epochs) {
  Net net(7);
  TrainerOptions options;
  options.batch_size = batch_size;
  options.shuffle_seed = 11;
  options.adamw.lr = 3e-3;
  Trainer<Net> trainer(net, train, test, options);
  trainer.run(epochs);
  return net.parameters();
}

TEST_CASE_TEMPLATE("reference engine: bit-identical for any thread count, full batch and minibatches", Backend,
                   TINYATTN_TEST_BACKENDS) {
  using Net = Transformer<Shape<11, 16, 2, 5>, AllOptions, Backend, float>;
  const TokenBatch train = random_sequences(11, 7, 5, 2500, 41, true), test = random_sequences(11, 7, 5, 300, 42, true);
  for (index_t batch_size : {0, 700}) {
    INFO("batch size " << batch_size);
    const auto a = train_for<Net>(train, test, batch_size, 4);
    const auto single = [&] {
      const ScopedCpuThreads one(1);
      return train_for<Net>(train, test, batch_size, 4);
    }();
    CHECK(single == a);
    CHECK(train_for<Net>(train, test, batch_size, 4) == a);
  }
}

// ---- minibatches -----------------------------------------------------------------------------------------
TEST_CASE("minibatches: one step per batch in the order of PythonRandom(seed).shuffle, the last batch shorter") {
  using Net = Transformer<Shape<9, 8, 2, 3>, Architecture<mlp<8>>, backend::cpu, double>;
  const TokenBatch train = random_sequences(9, 9, 3, 50, 51, false);
  Net a(3), b(3);
  TrainerOptions options;
  options.batch_size = 16;  // 16 + 16 + 16 + 2
  options.shuffle_seed = 5;
  Trainer<Net> minibatched(a, train, TokenBatch{}, options);
  const EpochMetrics m = minibatched.train_epoch();
  CHECK(minibatched.optimizer().steps() == 4);

  // The same steps by hand: full-batch trainers on each part, sharing one optimizer state by checkpointing
  // is not possible across trainers, so replay with one trainer per part and AdamW state carried in b.
  std::vector<index_t> order(50);
  std::iota(order.begin(), order.end(), 0);
  PythonRandom(5).shuffle(order);
  AdamW<backend::cpu, double> adamw(Net::parameter_count, options.adamw);
  double loss_sum = 0;
  std::int64_t scored = 0;
  for (index_t first = 0; first < 50; first += 16) {
    TokenBatch part;
    part.context = 3;
    for (index_t i = first; i < std::min<index_t>(50, first + 16); ++i) {
      const index_t s = order[static_cast<std::size_t>(i)];
      part.tokens.insert(part.tokens.end(), train.sample(s), train.sample(s) + 3);
      part.targets.push_back(train.targets[static_cast<std::size_t>(s)]);
    }
    TrainerOptions one;
    one.engine = Engine::reference;
    Trainer<Net> step(b, part, TokenBatch{}, one);
    const Evaluation e = step.compute_gradients();
    loss_sum += e.loss * static_cast<double>(e.samples);
    scored += e.samples;
    const std::vector<double> g = step.gradients();
    adamw.step(b.parameter_data(), g.data());
    b.mark_modified();
  }
  CHECK(a.parameters() == b.parameters());
  CHECK(m.train_loss == doctest::Approx(loss_sum / static_cast<double>(scored)).epsilon(1e-12));
}

TEST_CASE("eval_every: the test set is evaluated after every k-th epoch only") {
  using Net = Transformer<Shape<9, 8, 2, 3>, Architecture<mlp<8>>, backend::cpu, float>;
  const TokenBatch train = random_sequences(9, 9, 3, 60, 52, false), test = random_sequences(9, 9, 3, 30, 53, false);
  Net net(1);
  TrainerOptions options;
  options.eval_every = 3;
  Trainer<Net> trainer(net, train, test, options);
  for (int e = 1; e <= 7; ++e) {
    const EpochMetrics m = trainer.train_epoch();
    CHECK(m.tested() == (e % 3 == 0));
    if (m.tested()) CHECK(m.test_loss == doctest::Approx(net.evaluate(test).loss).epsilon(1e-6));
  }
}

TEST_CASE("a test set with samples but no targets is an error, not 'no test set'") {
  using Net = Transformer<Shape<9, 8, 2, 3>, Architecture<mlp<8>>, backend::cpu, float>;
  Net net(1);
  TokenBatch test = random_sequences(9, 9, 3, 5, 54, false);
  test.targets.clear();
  CHECK_THROWS_WITH_AS(Trainer<Net>(net, random_sequences(9, 9, 3, 5, 55, false), test),
                       "Trainer: test set: the batch has 5 samples but no targets (a loss needs them)", Error);
}

TEST_CASE_TEMPLATE("predict needs no targets and equals the argmax of inspect's last logits", Backend,
                   TINYATTN_TEST_BACKENDS) {
  using Net = Transformer<Shape<11, 12, 3, 5>, AllOptions, Backend, float>;
  Net net(3);
  scramble(net, 4);
  TokenBatch batch = random_sequences(11, 7, 5, 40, 56, true);
  batch.targets.clear();
  const std::vector<index_t> predicted = net.predict(batch);
  const auto cache = net.inspect(batch, {"logits"});
  for (index_t n = 0; n < batch.size(); ++n) {
    const float* l = cache.logits_at(n, 4);
    CHECK(predicted[static_cast<std::size_t>(n)] == std::max_element(l, l + 7) - l);
  }
}

}  // namespace
}  // namespace tinyattn::test
