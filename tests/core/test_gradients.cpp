// Finite-difference checks of every parameter tensor's gradient, in double precision, on both logit
// paths, for the reference shape and shapes that stress other code paths.
#include "../support/test_support.hpp"

namespace tinyattn::test {
namespace {

// Central differences on a sample of each tensor's elements: |analytic - numeric| <= 1e-6 + 1e-5 |numeric|.
template <class Shape, class Backend>
void check_gradients(LogitPath path, const TokenBatch& batch, std::uint64_t seed, ScorePath scores) {
  using Net = AttentionNetwork<Shape, Backend, double>;
  Net net(seed);
  TrainerOptions options;
  options.logit_path = path;
  options.score_path = scores;
  Trainer<Net> trainer(net, batch, TokenBatch{}, options);
  REQUIRE(trainer.logit_path() == resolve<Shape>(path));
  trainer.compute_gradients();
  const std::vector<double> analytic = trainer.gradients();
  const std::vector<double> base = net.parameters();
  auto loss_at = [&](const std::vector<double>& params) {
    net.set_parameters(params);
    return trainer.compute_gradients().loss;
  };
  SplitMix64 pick(seed + 2);
  const double h = 1e-5;
  for (const auto& spec : Net::Layout::tensors()) {
    double worst = 0;
    for (int trial = 0; trial < 12; ++trial) {
      const std::size_t i = spec.offset + pick.next() % spec.count();
      std::vector<double> p = base;
      p[i] = base[i] + h;
      const double up = loss_at(p);
      p[i] = base[i] - h;
      const double down = loss_at(p);
      const double numeric = (up - down) / (2 * h);
      const double error = std::abs(analytic[i] - numeric);
      worst = std::max(worst, error);
      CHECK_MESSAGE(error <= 1e-6 + 1e-5 * std::abs(numeric), std::string(spec.short_name)
                                                                  << "[" << i - spec.offset << "]: analytic "
                                                                  << analytic[i] << ", numeric " << numeric);
    }
    MESSAGE(std::string(spec.short_name) << " (" << std::string(to_string(resolve<Shape>(path))) << ", "
                                         << std::string(to_string(trainer.score_path())) << "): worst |error| "
                                         << worst);
  }
}

template <class Shape, class Backend>
void check_gradients(LogitPath path, index_t samples, std::uint64_t seed, ScorePath scores = ScorePath::automatic) {
  check_gradients<Shape, Backend>(path, random_batch(Shape::vocab, Shape::context, samples, seed + 1), seed, scores);
}

TEST_CASE_TEMPLATE("finite-difference gradients: reference shape, every path", Backend, TINYATTN_TEST_BACKENDS) {
  SUBCASE("logit table, score table") {
    check_gradients<ReferenceShape, Backend>(LogitPath::logit_table, 96, 1, ScorePath::table);
  }
  SUBCASE("logit table, per-sample scores") {
    check_gradients<ReferenceShape, Backend>(LogitPath::logit_table, 96, 1, ScorePath::per_sample);
  }
  SUBCASE("direct, score table") {
    check_gradients<ReferenceShape, Backend>(LogitPath::direct, 96, 2, ScorePath::table);
  }
  SUBCASE("direct, per-sample scores") {
    check_gradients<ReferenceShape, Backend>(LogitPath::direct, 96, 2, ScorePath::per_sample);
  }
  SUBCASE("min/max samples, automatic paths") {  // the task's structure: one query token, '='
    const MinMaxTask task(128, 7);
    const std::vector<index_t> some(task.train_indices().begin(), task.train_indices().begin() + 200);
    check_gradients<ReferenceShape, Backend>(LogitPath::automatic, task.batch(some), 7, ScorePath::automatic);
  }
}

TEST_CASE_TEMPLATE("finite-difference gradients: odd shape V=17 D=12 H=3 T=5, every path", Backend,
                   TINYATTN_TEST_BACKENDS) {
  using S = Shape<17, 12, 3, 5>;
  SUBCASE("logit table, score table") { check_gradients<S, Backend>(LogitPath::logit_table, 300, 3, ScorePath::table); }
  SUBCASE("logit table, per-sample") {
    check_gradients<S, Backend>(LogitPath::logit_table, 300, 3, ScorePath::per_sample);
  }
  SUBCASE("direct, score table") { check_gradients<S, Backend>(LogitPath::direct, 300, 4, ScorePath::table); }
  SUBCASE("direct, per-sample") { check_gradients<S, Backend>(LogitPath::direct, 300, 4, ScorePath::per_sample); }
}

// Several tiles on the CPU backend (1024 samples each): with logit and score tables they run as tasks
// into per-tile partial tables (Primitives::kTileTasks); otherwise one after another.
TEST_CASE_TEMPLATE("finite-difference gradients: batches larger than a tile", Backend, TINYATTN_TEST_BACKENDS) {
  using S = Shape<11, 16, 2, 3>;
  SUBCASE("logit table") { check_gradients<S, Backend>(LogitPath::logit_table, 2500, 8, ScorePath::table); }
  SUBCASE("direct") { check_gradients<S, Backend>(LogitPath::direct, 2500, 9, ScorePath::per_sample); }
  SUBCASE("V=17 D=12 H=3 T=5, logit and score tables") {
    check_gradients<Shape<17, 12, 3, 5>, Backend>(LogitPath::logit_table, 2200, 10, ScorePath::table);
  }
  SUBCASE("V=17 D=12 H=3 T=5, logit table, per-sample scores") {
    check_gradients<Shape<17, 12, 3, 5>, Backend>(LogitPath::logit_table, 2200, 11, ScorePath::per_sample);
  }
}

TEST_CASE_TEMPLATE("finite-difference gradients: one head, one token, wide", Backend, TINYATTN_TEST_BACKENDS) {
  SUBCASE("V=5 D=40 H=1 T=1") { check_gradients<Shape<5, 40, 1, 1>, Backend>(LogitPath::automatic, 50, 5); }
  SUBCASE("V=9 D=8 H=4 T=6") { check_gradients<Shape<9, 8, 4, 6>, Backend>(LogitPath::automatic, 700, 6); }
  SUBCASE("V=17 D=8 H=8 T=8, direct path chosen") {
    static_assert(preferred_logit_path<Shape<17, 8, 8, 8>>() == LogitPath::direct);
    check_gradients<Shape<17, 8, 8, 8>, Backend>(LogitPath::automatic, 400, 10);
  }
}

// Few query rows (the last token takes 1-3 values): the CPU backend mixes the logit table rebased on
// the query row (7 rows instead of 9 on the reference shape); Thrust does not. Same gradients.
TEST_CASE_TEMPLATE("finite-difference gradients: few query tokens, rebased logit table", Backend,
                   TINYATTN_TEST_BACKENDS) {
  const bool cpu = std::is_same_v<Backend, backend::cpu>;
  SUBCASE("V=17 D=12 H=3 T=5, one query token") {
    using S = Shape<17, 12, 3, 5>;
    const TokenBatch batch = few_query_batch(S::vocab, S::context, 300, 21, 1);
    CHECK(rebased_for<S, Backend>(batch) == cpu);
    check_gradients<S, Backend>(LogitPath::logit_table, batch, 21, ScorePath::table);
    check_gradients<S, Backend>(LogitPath::logit_table, batch, 22, ScorePath::per_sample);
  }
  SUBCASE("V=11 D=16 H=2 T=3, two query tokens, several tiles") {
    using S = Shape<11, 16, 2, 3>;
    const TokenBatch batch = few_query_batch(S::vocab, S::context, 5000, 23, 2);
    CHECK(rebased_for<S, Backend>(batch) == cpu);
    check_gradients<S, Backend>(LogitPath::logit_table, batch, 23, ScorePath::table);
  }
  SUBCASE("V=9 D=8 H=4 T=2, three query tokens") {
    using S = Shape<9, 8, 4, 2>;
    const TokenBatch batch = few_query_batch(S::vocab, S::context, 400, 24, 3);
    CHECK(rebased_for<S, Backend>(batch) == cpu);
    check_gradients<S, Backend>(LogitPath::logit_table, batch, 24, ScorePath::automatic);
  }
}

}  // namespace
}  // namespace tinyattn::test
