// The table engine (the fast path) against the reference engine (the plain math) wherever the table
// engine's premises hold: evaluation, every gradient, and 20 training epochs, on the reference shape
// and odd shapes, every logit and score path, both backends.
#include "../support/test_support.hpp"

#include "tinyattn/model/repeated_evaluation.hpp"

namespace tinyattn::test {
namespace {

template <class Net>
TrainerOptions options_for(Engine engine, LogitPath path, ScorePath scores,
                           MlpInputPath mlp_input = MlpInputPath::automatic) {
  TrainerOptions o = reference_options();
  o.engine = engine;
  o.logit_path = path;
  o.score_path = scores;
  o.mlp_input = mlp_input;
  return o;
}

template <class Shape, class Arch, class Backend>
void check_engines_agree(const TokenBatch& train, const TokenBatch& test, std::uint64_t seed, LogitPath path,
                         ScorePath scores, MlpInputPath mlp_input = MlpInputPath::automatic) {
  using Net = Transformer<Shape, Arch, Backend, double>;
  static_assert(Net::has_table_engine);
  Net table_net(seed), reference_net(seed);
  Trainer<Net> table(table_net, train, test, options_for<Net>(Engine::table, path, scores, mlp_input));
  Trainer<Net> reference(reference_net, train, test, options_for<Net>(Engine::reference, path, scores));
  REQUIRE(table.engine() == Engine::table);
  REQUIRE(reference.engine() == Engine::reference);
  if (mlp_input != MlpInputPath::automatic) REQUIRE(table.mlp_input_path() == mlp_input);

  // Evaluation: the loss is a smooth function of every logit, so agreement to 1e-12 in double means
  // the logits agree; the hits are counted exactly.
  const Evaluation et = table_net.evaluate(test, path, scores, Engine::table);
  const Evaluation er = reference_net.evaluate(test, path, scores, Engine::reference);
  CHECK(et.loss == doctest::Approx(er.loss).epsilon(1e-12));
  CHECK(et.correct == er.correct);

  // Every gradient.
  const Evaluation gt = table.compute_gradients(), gr = reference.compute_gradients();
  CHECK(gt.loss == doctest::Approx(gr.loss).epsilon(1e-12));
  const auto cmp_g = compare(table.gradients(), reference.gradients(), 1e-9, 1e-13);
  CHECK_MESSAGE(cmp_g.ok, cmp_g.describe("gradient, table vs reference engine"));

  // 20 epochs of AdamW.
  for (int e = 0; e < 20; ++e) {
    const EpochMetrics mt = table.train_epoch(), mr = reference.train_epoch();
    CHECK(mt.train_loss == doctest::Approx(mr.train_loss).epsilon(1e-10));
    CHECK(mt.test_loss == doctest::Approx(mr.test_loss).epsilon(1e-10));
  }
  const auto cmp_p = compare(table_net.parameters(), reference_net.parameters(), 0.0, 1e-10);
  MESSAGE("after 20 epochs: max |table - reference| = " << cmp_p.max_abs_error);
  CHECK_MESSAGE(cmp_p.ok, cmp_p.describe("weights after 20 epochs, table vs reference engine"));
}

TEST_CASE_TEMPLATE("table engine = reference engine: the reference shape on min/max samples, every path", Backend,
                   TINYATTN_TEST_BACKENDS) {
  const MinMaxTask task(16, 3);  // a small operand range: the reference shape's vocabulary is 131 anyway
  TokenBatch train = task.train(), test = task.test();
  for (TokenBatch* b : {&train, &test})  // tokens of max_n = 16 remapped into the reference vocabulary
    for (index_t& t : b->tokens) t = t >= 16 ? t + 112 : t;
  for (LogitPath path : {LogitPath::logit_table, LogitPath::direct})
    for (ScorePath scores : {ScorePath::table, ScorePath::per_sample}) {
      INFO(std::string(to_string(path)) << ", " << std::string(to_string(scores)));
      check_engines_agree<ReferenceShape, ReferenceArchitecture, Backend>(train, test, 5, path, scores);
    }
}

TEST_CASE_TEMPLATE("table engine = reference engine: odd shapes, a causal mask and absent biases", Backend,
                   TINYATTN_TEST_BACKENDS) {
  SUBCASE("V=17 D=12 H=3 T=5, several tiles") {
    check_engines_agree<Shape<17, 12, 3, 5>, ReferenceArchitecture, Backend>(
        random_sequences(17, 17, 5, 2300, 61, false), random_sequences(17, 17, 5, 200, 62, false), 6,
        LogitPath::automatic, ScorePath::automatic);
  }
  SUBCASE("V=9 D=8 H=4 T=6, causal (nothing masked at the last query), no biases") {
    check_engines_agree<Shape<9, 8, 4, 6>, Architecture<causal_mask, no_biases>, Backend>(
        random_sequences(9, 9, 6, 400, 63, false), random_sequences(9, 9, 6, 100, 64, false), 7, LogitPath::automatic,
        ScorePath::automatic);
  }
  SUBCASE("few query tokens: the rebased logit table (CPU)") {
    check_engines_agree<Shape<11, 16, 2, 3>, ReferenceArchitecture, Backend>(few_query_batch(11, 3, 1500, 65, 2),
                                                                             few_query_batch(11, 3, 300, 66, 2), 8,
                                                                             LogitPath::logit_table, ScorePath::table);
  }
}

TEST_CASE_TEMPLATE("table engine = reference engine: one block with an MLP and/or an untied unembedding", Backend,
                   TINYATTN_TEST_BACKENDS) {
  SUBCASE("the grokking architecture, scaled down: ReLU MLP, untied to fewer outputs, one query token") {
    using A = Architecture<mlp<24>, untied_unembedding, output_vocab<11>>;
    const auto train = few_query_batch(12, 3, 1500, 81, 1), test = few_query_batch(12, 3, 300, 82, 1);
    TokenBatch tr = train, te = test;
    for (TokenBatch* b : {&tr, &te})
      for (index_t& y : b->targets) y %= 11;
    // The MLP's input mixed from per-row products (J = 13 rows of 16 < D) and by one product.
    for (MlpInputPath mlp_input : {MlpInputPath::table, MlpInputPath::direct}) {
      INFO(to_string(mlp_input));
      check_engines_agree<Shape<12, 16, 4, 3>, A, Backend>(tr, te, 9, LogitPath::automatic, ScorePath::automatic,
                                                           mlp_input);
    }
  }
  SUBCASE("GELU MLP, the MLP input from per-row products, several query tokens and tiles") {
    check_engines_agree<Shape<13, 24, 2, 4>, Architecture<mlp<36, Activation::gelu>, no_biases>, Backend>(
        random_sequences(13, 13, 4, 2600, 87, false), random_sequences(13, 13, 4, 200, 88, false), 12,
        LogitPath::automatic, ScorePath::automatic, MlpInputPath::table);
  }
  SUBCASE("GELU MLP, tied, several query tokens, several tiles") {
    check_engines_agree<Shape<13, 12, 3, 4>, Architecture<mlp<20, Activation::gelu>, no_biases>, Backend>(
        random_sequences(13, 13, 4, 2600, 83, false), random_sequences(13, 13, 4, 200, 84, false), 10,
        LogitPath::automatic, ScorePath::automatic);
  }
  SUBCASE("untied without an MLP, causal") {
    check_engines_agree<Shape<9, 8, 2, 5>, Architecture<untied_unembedding, output_vocab<7>, causal_mask>, Backend>(
        random_sequences(9, 7, 5, 400, 85, false), random_sequences(9, 7, 5, 100, 86, false), 11, LogitPath::automatic,
        ScorePath::per_sample);
  }
}

// RepeatedEvaluation against net.evaluate: equal bits for two models at the same version (it must not
// reuse the first one's tables for the second) and after training steps changed the parameters.
template <class Net>
void check_repeated_evaluation(const TokenBatch& batch, const TokenBatch& train) {
  const auto same = [](const Evaluation& a, const Evaluation& b) {
    return a.loss == b.loss && a.accuracy == b.accuracy && a.correct == b.correct && a.samples == b.samples;
  };
  Net net(5), other(6);
  REQUIRE(net.version() == other.version());
  RepeatedEvaluation<Net> repeated(batch);
  const Evaluation first = repeated.evaluate(net);
  CHECK(same(first, net.evaluate(batch)));
  CHECK(same(repeated.evaluate(other), other.evaluate(batch)));
  CHECK(same(repeated.evaluate(net), first));
  Trainer<Net> trainer(net, train, TokenBatch{}, reference_options());
  for (int e = 0; e < 3; ++e) trainer.train_epoch();
  const Evaluation trained = repeated.evaluate(net);
  CHECK(same(trained, net.evaluate(batch)));
  CHECK(trained.loss != first.loss);
}

TEST_CASE_TEMPLATE("repeated evaluation = net.evaluate, bit for bit, as the parameters change", Backend,
                   TINYATTN_TEST_BACKENDS) {
  SUBCASE("the table engine (the reference architecture, float)") {
    using Net = Transformer<Shape<9, 8, 2, 4>, ReferenceArchitecture, Backend, float>;
    static_assert(Net::has_table_engine);
    check_repeated_evaluation<Net>(few_query_batch(9, 4, 60, 87, 2), random_sequences(9, 9, 4, 40, 88, false));
  }
  SUBCASE("the reference engine (two blocks, every position scored)") {
    using Net =
        Transformer<Shape<9, 8, 2, 5>, Architecture<n_layers<2>, causal_mask, loss_at_every_position>, Backend, float>;
    check_repeated_evaluation<Net>(random_sequences(9, 9, 5, 30, 89, true), random_sequences(9, 9, 5, 20, 90, true));
  }
  SUBCASE("a batch net.evaluate refuses") {
    using Net = Transformer<Shape<9, 8, 2, 4>, ReferenceArchitecture, Backend, float>;
    TokenBatch inputs_only = random_sequences(9, 9, 4, 5, 91, false);
    inputs_only.targets.clear();
    CHECK_THROWS_AS(RepeatedEvaluation<Net>{inputs_only}, Error);
  }
}

TEST_CASE("the engine is chosen from the architecture and the training setup") {
  const MinMaxTask task(16, 1);
  TokenBatch train = task.train();
  for (index_t& t : train.tokens) t = t >= 16 ? t + 112 : t;
  using Net = AttentionNetwork<ReferenceShape>;
  Net net(1);
  CHECK(Trainer<Net>(net, train, TokenBatch{}).engine() == Engine::table);
  TrainerOptions minibatch;
  minibatch.batch_size = 10;
  CHECK(Trainer<Net>(net, train, TokenBatch{}, minibatch).engine() == Engine::reference);
  minibatch.engine = Engine::table;
  CHECK_THROWS_WITH_AS(Trainer<Net>(net, train, TokenBatch{}, minibatch),
                       "Trainer: the table engine needs full-batch training and every sample scored at the last "
                       "position; use Engine::automatic or Engine::reference",
                       Error);
  using Mlp = Transformer<Shape<9, 8, 2, 3>, Architecture<mlp<4>>>;
  static_assert(Mlp::has_table_engine);
  Mlp mlp_net(1);
  CHECK(Trainer<Mlp>(mlp_net, random_sequences(9, 9, 3, 20, 1, false), TokenBatch{}).engine() == Engine::table);
  // The MLP input path: J = H T + 1 = 7 rows mixed instead of a product of width D = 8 pays only with
  // many samples per table row; a model without an MLP has no such table.
  CHECK(Trainer<Mlp>(mlp_net, random_sequences(9, 9, 3, 20, 1, false), TokenBatch{}).mlp_input_path() ==
        MlpInputPath::direct);
  using Grokking = Transformer<Shape<12, 16, 4, 3>, Architecture<mlp<24>, untied_unembedding, output_vocab<11>>>;
  Grokking grokking(1);
  TokenBatch few = few_query_batch(12, 3, 1500, 81, 1);
  for (index_t& y : few.targets) y %= 11;
  CHECK(Trainer<Grokking>(grokking, few, TokenBatch{}).mlp_input_path() == MlpInputPath::table);
  TrainerOptions table_input;
  table_input.mlp_input = MlpInputPath::table;
  CHECK_THROWS_WITH_AS(Trainer<Net>(net, train, TokenBatch{}, table_input),
                       "table engine: the MLP input table needs a model with an MLP", Error);
  using Deep = Transformer<Shape<9, 8, 2, 3>, Architecture<n_layers<2>>>;
  static_assert(!Deep::has_table_engine);
  using Normed = Transformer<Shape<9, 8, 2, 3>, Architecture<layer_norm>>;
  static_assert(!Normed::has_table_engine);
  Deep deep(1);
  CHECK(Trainer<Deep>(deep, random_sequences(9, 9, 3, 20, 1, false), TokenBatch{}).engine() == Engine::reference);
}

}  // namespace
}  // namespace tinyattn::test
