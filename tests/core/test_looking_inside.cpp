// Looking inside (include/tinyattn/inspect/): circuits agree with the activations and the logits, direct
// logit attributions add up to the logits, the failure atlas marks exactly the wrong inputs, and the
// induction-head scores read a hand-built pattern and a network right.
#include "../support/test_support.hpp"

#include "tinyattn/inspect/attribution.hpp"
#include "tinyattn/inspect/circuits.hpp"
#include "tinyattn/inspect/fourier.hpp"
#include "tinyattn/inspect/induction_heads.hpp"
#include "tinyattn/inspect/minmax_analysis.hpp"
#include "tinyattn/inspect/training_snapshots.hpp"

namespace tinyattn::test {
namespace {

template <class Net>
void check_circuits_against_activations(const Net& net, const TokenBatch& batch) {
  const auto c = circuits(net);
  const auto c2 = circuits(net, /*from_activations=*/true);
  TINYATTN_CHECK_CLOSE(c.qk, c2.qk, 1e-9, 1e-9, "QK circuit, tables vs activations");
  TINYATTN_CHECK_CLOSE(c.ov, c2.ov, 1e-9, 1e-9, "OV circuit, tables vs activations");
  const auto cache = net.inspect(batch, {"blocks.0.attn.scores"});
  constexpr index_t T = Net::context, H = Net::heads;
  for (index_t n = 0; n < batch.size(); ++n)
    for (index_t h = 0; h < H; ++h)
      for (index_t q = 0; q < T; ++q)
        for (index_t k = 0; k < T; ++k)
          CHECK(cache.score(n, h, q, k) ==
                doctest::Approx(c.qk_at(h, c.row(batch.sample(n)[q], q), c.row(batch.sample(n)[k], k))).epsilon(1e-10));
}

TEST_CASE_TEMPLATE("circuits: the fast path's tables equal the activations' circuits and inspect()'s scores", Backend,
                   TINYATTN_TEST_BACKENDS) {
  SUBCASE("the reference architecture") {
    using Net = Transformer<Shape<9, 8, 2, 4>, ReferenceArchitecture, Backend, double>;
    check_circuits_against_activations(Net(3), random_sequences(9, 9, 4, 20, 91, false));
  }
  SUBCASE("an MLP and an untied unembedding (the grokking architecture)") {
    using Net =
        Transformer<Shape<8, 12, 3, 3>, Architecture<mlp<16>, untied_unembedding, output_vocab<7>>, Backend, double>;
    check_circuits_against_activations(Net(4), random_sequences(8, 7, 3, 20, 92, false));
  }
}

// qk_circuit_rows against circuits() for every chosen query row (repeated and in any order) against every
// key row: the same bits from the activations (both sum q . k in double), within the rounding of a
// float dot product from the tables (circuits() takes the engine's score table, a matrix product).
template <class Net>
void check_qk_rows_against_circuits(const Net& net, bool from_activations) {
  constexpr index_t V = Net::vocab, T = Net::context, H = Net::heads;
  const auto c = circuits(net, from_activations);
  const std::vector<index_t> chosen{(T - 1) * V + V - 1, 0, 2 * V + 3, (T - 1) * V + V - 1, V + 1};
  const auto s = qk_circuit_rows(net, chosen, from_activations);
  REQUIRE(s.query_rows == chosen);
  REQUIRE(s.rows == V * T);
  REQUIRE(s.qk.size() == static_cast<std::size_t>(H) * chosen.size() * V * T);
  const bool bitwise = from_activations || !Net::has_table_engine;
  std::size_t differing = 0;
  for (index_t h = 0; h < H; ++h)
    for (std::size_t i = 0; i < chosen.size(); ++i)
      for (index_t key = 0; key < V * T; ++key) {
        const double rows = s.scores(h, static_cast<index_t>(i))[key], full = c.qk_at(h, chosen[i], key);
        if (bitwise ? rows != full : std::abs(rows - full) > 1e-5 * (1 + std::abs(full))) ++differing;
      }
  CHECK(differing == 0);
  // Kept and computed again after the parameters change: the new parameters' scores.
  QueryRowCircuit<Net> kept(chosen, from_activations);
  kept.compute(net);
  Net other(99);
  const auto& again = kept.compute(other);
  CHECK(again.qk == qk_circuit_rows(other, chosen, from_activations).qk);
  CHECK(again.qk != s.qk);
  CHECK_THROWS_AS(qk_circuit_rows(net, {V * T}), Error);
  CHECK_THROWS_AS(qk_circuit_rows(net, {-1}), Error);
}

TEST_CASE_TEMPLATE("circuits: the QK rows of chosen queries are circuits()'s", Backend, TINYATTN_TEST_BACKENDS) {
  SUBCASE("the reference architecture in float, from the tables and from the activations") {
    using Net = Transformer<Shape<9, 8, 2, 4>, ReferenceArchitecture, Backend, float>;
    check_qk_rows_against_circuits(Net(7), false);
    check_qk_rows_against_circuits(Net(7), true);
  }
  SUBCASE("an MLP and an untied unembedding (the grokking architecture)") {
    using Net =
        Transformer<Shape<8, 12, 3, 3>, Architecture<mlp<16>, untied_unembedding, output_vocab<7>>, Backend, float>;
    check_qk_rows_against_circuits(Net(8), false);
  }
  SUBCASE("a LayerNorm (no table engine: from the activations)") {
    using Net = Transformer<Shape<9, 8, 2, 4>, Architecture<layer_norm>, Backend, float>;
    static_assert(!Net::has_table_engine);
    check_qk_rows_against_circuits(Net(9), false);
  }
}

TEST_CASE("circuits: the reference model's logits are its direct path plus the OV rows weighted by the pattern") {
  using Net = Transformer<Shape<9, 8, 2, 4>, ReferenceArchitecture, backend::cpu, double>;
  const Net net(5);
  const TokenBatch batch = random_sequences(9, 9, 4, 15, 93, false);
  const auto c = circuits(net);
  const auto cache = net.inspect(batch, {"blocks.0.attn.hook_pattern", "hook_embed", "hook_pos_embed", "logits"});
  const std::vector<double> w_e = net.tensor("embed.W_E");
  for (index_t n = 0; n < batch.size(); ++n) {
    const index_t* tokens = batch.sample(n);
    for (index_t o = 0; o < 9; ++o) {
      double logit = 0;
      for (index_t d = 0; d < 8; ++d)
        logit += (cache["hook_embed"].values[(static_cast<std::size_t>(n) * 4 + 3) * 8 + d] +
                  cache["hook_pos_embed"].values[(static_cast<std::size_t>(n) * 4 + 3) * 8 + d]) *
                 w_e[static_cast<std::size_t>(o) * 8 + d];
      for (index_t h = 0; h < 2; ++h)
        for (index_t k = 0; k < 4; ++k) logit += cache.weight(n, h, 3, k) * c.ov_row(h, c.row(tokens[k], k))[o];
      CHECK(logit == doctest::Approx(cache.logits_at(n, 3)[o]).epsilon(1e-10));
    }
  }
}

template <class Net>
void check_attribution_sums(const Net& net, const TokenBatch& batch, double tolerance) {
  const auto dla = direct_logit_attribution(net, batch);
  const auto cache = net.inspect(batch, {"logits"});
  for (index_t n = 0; n < batch.size(); ++n)
    for (index_t c = 0; c < Net::vocab_out; ++c) {
      double sum = 0;
      for (std::size_t k = 0; k < dla.components.size(); ++k) sum += dla.of(k, n)[c];
      CHECK(sum == doctest::Approx(cache.logits_at(n, Net::context - 1)[c]).epsilon(tolerance).scale(1.0));
    }
}

TEST_CASE("direct logit attribution: the components add up to the logits") {
  SUBCASE("the reference architecture (float: within 1e-5)") {
    check_attribution_sums(AttentionNetwork<ReferenceShape>(6), MinMaxTask(128, 6).batch({0, 100, 20000, 32767}), 1e-5);
  }
  SUBCASE("two layers, LayerNorm (frozen scale), MLPs, trainable biases, untied") {
    using Arch = Architecture<n_layers<2>, causal_mask, mlp<12>, layer_norm, trainable_biases, untied_unembedding>;
    using Net = Transformer<Shape<11, 12, 3, 5>, Arch, backend::cpu, double>;
    Net net(7);
    std::vector<double> p = net.parameters();
    SplitMix64 bits(8);
    for (const TensorSpec& spec : Net::Layout::tensors())
      if (spec.kind != TensorKind::weight)
        for (std::size_t i = 0; i < spec.count(); ++i)
          p[spec.offset + i] += static_cast<double>(bits.next() % 100) / 200.0;
    net.set_parameters(p);
    const auto dla = direct_logit_attribution(net, random_sequences(11, 11, 5, 6, 94, false));
    CHECK(dla.components.size() == 2 + 2 * (3 + 1 + 1) + 1);
    check_attribution_sums(net, random_sequences(11, 11, 5, 6, 94, false), 1e-9);
    const TokenBatch batch = random_sequences(11, 11, 5, 6, 95, false);
    const auto all = direct_logit_attribution(net, batch), target = direct_logit_attribution(net, batch, true);
    REQUIRE(target.vocab_out == 1);
    for (std::size_t k = 0; k < all.components.size(); ++k)
      for (index_t n = 0; n < 6; ++n) CHECK(target.of(k, n)[0] == all.of(k, n)[batch.last_target(n)]);
  }
}

TEST_CASE("min/max failure atlas: the failures are exactly the inputs whose argmax is wrong — the ablation table") {
  using Net = AttentionNetwork<Shape<19, 16, 2, 4>>;  // max_n = 16: 512 inputs
  const MinMaxTask task(16, 1);
  Net net(1);
  TrainerOptions options = reference_options();
  options.adamw.lr = 1e-2;
  Trainer<Net> trainer(net, task.train(), task.test(), options);
  trainer.run(60);
  const MinMaxAtlas atlas = minmax_failure_atlas(net, task);
  const std::vector<index_t> predicted = net.predict(task.all());
  std::size_t wrong = 0;
  for (index_t i = 0; i < task.size(); ++i) {
    const MinMaxSample s = task.sample(i);
    const bool is_wrong = predicted[static_cast<std::size_t>(i)] != s.target;
    wrong += is_wrong;
    const bool listed = std::any_of(atlas.failures.begin(), atlas.failures.end(), [&](const MinMaxAtlas::Failure& f) {
      return f.op == s.op && f.a == s.a && f.b == s.b;
    });
    CHECK(listed == is_wrong);
    CHECK((atlas.margin[static_cast<int>(s.op)][static_cast<std::size_t>(s.a) * 16 + s.b] > 0) == !is_wrong);
  }
  CHECK(atlas.failures.size() == wrong);
  MESSAGE(wrong << " of 512 wrong after 60 epochs");
  const double accuracy = 1.0 - static_cast<double>(wrong) / 512.0;
  const auto rows = minmax_ablation_table(net, task);
  REQUIRE(rows.size() == 7);  // none; zero each, both; mean each, both
  CHECK(rows[0].what == "none");
  CHECK((rows[0].accuracy[0] + rows[0].accuracy[1]) / 2 == doctest::Approx(accuracy));
  // zero-ablating a head equals removing its output projection
  Net without = net;
  std::vector<float> p = without.parameters();
  std::fill(p.begin() + static_cast<std::ptrdiff_t>(Net::Layout::output),
            p.begin() + static_cast<std::ptrdiff_t>(Net::Layout::output + 8 * 16), 0.0f);
  without.set_parameters(p);
  const auto max_inputs = [&] {
    std::vector<index_t> v(256);
    std::iota(v.begin(), v.end(), 0);
    return task.batch(v);
  }();
  CHECK(rows[1].what == "zero head 0");
  CHECK(rows[1].accuracy[0] == doctest::Approx(without.evaluate(max_inputs).accuracy));
  const auto roles = minmax_head_roles(atlas);
  CHECK(roles.size() == 2);
}

TEST_CASE("induction-head scores on a hand-built pattern") {
  constexpr index_t T = 8, n = 4, N = 3;
  std::vector<float> previous(static_cast<std::size_t>(N) * T * T, 0.0f), induction = previous;
  for (index_t s = 0; s < N; ++s)
    for (index_t t = 0; t < T; ++t) {
      previous[(static_cast<std::size_t>(s) * T + t) * T + (t > 0 ? t - 1 : 0)] = 1.0f;
      if (t >= n) induction[(static_cast<std::size_t>(s) * T + t) * T + (t - n + 1)] = 0.75f;
      induction[(static_cast<std::size_t>(s) * T + t) * T + t] += t >= n ? 0.25f : 1.0f;
    }
  double prev = 0, prefix = 0;
  attention_scores_of_repeats(previous.data(), N, T, prev, prefix);
  CHECK(prev == doctest::Approx(1.0));
  CHECK(prefix == doctest::Approx(0.0));
  attention_scores_of_repeats(induction.data(), N, T, prev, prefix);
  CHECK(prev == doctest::Approx(0.0));
  CHECK(prefix == doctest::Approx(0.75));
  // copying: the identity copies (1), its negative suppresses (-1)
  std::vector<double> identity(16, 0.0), negative(16, 0.0);
  for (index_t i = 0; i < 4; ++i)
    identity[static_cast<std::size_t>(i) * 5] = 2.0, negative[static_cast<std::size_t>(i) * 5] = -1.0;
  CHECK(copying_score(identity, 4) == doctest::Approx(1.0));
  CHECK(copying_score(negative, 4) == doctest::Approx(-1.0));
  CHECK_THROWS_AS(attention_scores_of_repeats(previous.data(), N, 7, prev, prefix), Error);
}

TEST_CASE("induction-head scores of a network: each head's pattern scores and its OV circuit's copying score") {
  using Net = Transformer<Shape<6, 8, 2, 8>, Architecture<n_layers<2>, causal_mask, loss_at_every_position>,
                          backend::cpu, double>;
  const Net net(3);
  const InductionTask task(6, 8, 5, 0, 11);
  const TokenBatch batch = task.train();
  const std::vector<HeadScores> scores = induction_head_scores(net, batch);
  REQUIRE(scores.size() == 4);
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const HeadScores& s = scores[i];
    CHECK(s.layer == static_cast<index_t>(i) / 2);
    CHECK(s.head == static_cast<index_t>(i) % 2);
    CHECK(s.copying == copying_score(ov_circuit(net, s.layer, s.head), 6));
    CHECK(s.copying >= -1.0);
    CHECK(s.copying <= 1.0);
    // The pattern scores from the head's own hook_pattern, read here by hand (n = 4: the position
    // after the current token's earlier copy is t - 3).
    const std::string name = "blocks." + std::to_string(s.layer) + ".attn.hook_pattern";
    const auto cache = net.inspect(batch, {name});
    double previous = 0, prefix = 0;
    for (index_t n = 0; n < batch.size(); ++n)
      for (index_t t = 4; t < 8; ++t) {
        previous += cache[name].values[((static_cast<std::size_t>(n) * 2 + s.head) * 8 + t) * 8 + (t - 1)];
        prefix += cache[name].values[((static_cast<std::size_t>(n) * 2 + s.head) * 8 + t) * 8 + (t - 3)];
      }
    CHECK(s.previous_token == doctest::Approx(previous / (5 * 4)));
    CHECK(s.prefix_matching == doctest::Approx(prefix / (5 * 4)));
  }
}

TEST_CASE("Fourier norms: a pure frequency has all its weight there — squared norms add up to the whole") {
  constexpr index_t P = 13, D = 3;
  std::vector<double> rows(static_cast<std::size_t>(P) * D);
  for (index_t a = 0; a < P; ++a) {
    rows[static_cast<std::size_t>(a) * D + 0] = std::cos(2 * 3.14159265358979323846 * 4 * a / P);
    rows[static_cast<std::size_t>(a) * D + 1] = 0.5 * std::sin(2 * 3.14159265358979323846 * 4 * a / P);
    rows[static_cast<std::size_t>(a) * D + 2] = 1.0;
  }
  const auto norms = fourier_norms(rows, P, D);
  double total = 0, squares = 0;
  for (double r : rows) total += r * r;
  for (double x : norms) squares += x * x;
  CHECK(squares == doctest::Approx(total));
  for (std::size_t k = 0; k < norms.size(); ++k)
    if (k != 0 && k != 4) CHECK(norms[k] == doctest::Approx(0.0).epsilon(1e-9).scale(1.0));
  CHECK(norms[0] == doctest::Approx(std::sqrt(13.0)));
}

// The snapshot of one frame against inspect(): every byte within rounding of weight * 255, the entropy of
// the patterns, every tensor's norm and the subsets' evaluations.
template <class Net>
void check_snapshot_against_inspect(const Net& net, const TokenBatch& probe, const TokenBatch& subset) {
  constexpr index_t L = Net::layers, H = Net::heads, T = Net::context;
  TrainingSnapshots<Net> snapshots(probe, {{"part", subset}});
  snapshots.take(net, 7);
  snapshots.take(net, 8);
  REQUIRE(snapshots.frame_count() == 2);
  const index_t N = probe.size();
  REQUIRE(snapshots.frames().size() == static_cast<std::size_t>(2) * N * L * H * T);
  std::vector<double> entropy(static_cast<std::size_t>(L) * H, 0.0);
  for (index_t l = 0; l < L; ++l) {
    const std::string name = "blocks." + std::to_string(l) + ".attn.hook_pattern";
    const auto cache = net.inspect(probe, {name});
    const auto& p = cache[name].values;
    for (index_t n = 0; n < N; ++n)
      for (index_t h = 0; h < H; ++h)
        for (index_t k = 0; k < T; ++k) {
          const double w = static_cast<double>(p[((static_cast<std::size_t>(n) * H + h) * T + T - 1) * T + k]);
          if (w > 0) entropy[static_cast<std::size_t>(l) * H + h] -= w * std::log(w) / N;
          for (std::size_t f = 0; f < 2; ++f) {
            const int byte =
                snapshots.frames()[f * N * L * H * T + ((static_cast<std::size_t>(n) * L + l) * H + h) * T + k];
            CHECK(std::abs(byte - w * 255) <= 0.5 + 1e-6);
          }
        }
  }
  const ProgressMeasures& m = snapshots.measures()[1];
  CHECK(m.epoch == 8);
  for (std::size_t i = 0; i < entropy.size(); ++i)
    CHECK(m.head_entropy[i] == doctest::Approx(entropy[i]).epsilon(1e-9));
  REQUIRE(m.tensor_norms.size() == Net::Layout::tensors().size());
  double sum = 0;
  for (auto v : net.tensor("embed.W_E")) sum += static_cast<double>(v) * v;
  CHECK(m.tensor_norms[0].first == "embed.W_E");
  CHECK(m.tensor_norms[0].second == doctest::Approx(std::sqrt(sum)));
  const Evaluation e = net.evaluate(subset);
  CHECK(m.subset_loss[0].first == "part");
  CHECK(m.subset_loss[0].second == e.loss);
  CHECK(m.subset_accuracy[0].second == e.accuracy);
}

TEST_CASE("training snapshots: the fast path's patterns and the progress measures equal inspect()'s and evaluate()'s") {
  SUBCASE("one block on the fast path (patterns from the QK tables)") {
    using Net = Transformer<Shape<9, 8, 2, 4>, ReferenceArchitecture, backend::cpu, double>;
    static_assert(Net::has_table_engine);
    check_snapshot_against_inspect(Net(3), random_sequences(9, 9, 4, 40, 95, false),
                                   random_sequences(9, 9, 4, 10, 96, false));
  }
  SUBCASE("one block on the fast path, scores hundreds apart (some rows computed from the scores alone)") {
    using Net = Transformer<Shape<9, 8, 2, 4>, ReferenceArchitecture, backend::cpu, double>;
    Net net(3);
    for (const char* name : {"blocks.0.attn.W_Q", "blocks.0.attn.W_K"}) {
      std::vector<double> w = net.tensor(name);
      for (double& x : w) x *= 40;
      net.set_tensor(name, w);
    }
    check_snapshot_against_inspect(net, random_sequences(9, 9, 4, 40, 95, false),
                                   random_sequences(9, 9, 4, 10, 96, false));
  }
  SUBCASE("two causal blocks (patterns from inspect)") {
    using Net = Transformer<Shape<9, 8, 2, 5>, Architecture<n_layers<2>, causal_mask, loss_at_every_position>,
                            backend::cpu, double>;
    check_snapshot_against_inspect(Net(4), random_sequences(9, 9, 5, 30, 97, true),
                                   random_sequences(9, 9, 5, 10, 98, true));
  }
}

}  // namespace
}  // namespace tinyattn::test
