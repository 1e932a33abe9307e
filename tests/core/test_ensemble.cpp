// Ensembles: every member's weights and metrics bit-identical to training it alone, on both engines;
// divergence recorded per member; bad options refused.
#include "../support/test_support.hpp"

#include <cstring>

#include "tinyattn/train/ensemble.hpp"

namespace tinyattn::test {
namespace {

// A member trained alone, the way the ensemble promises to train it.
template <class Net>
std::pair<std::vector<EpochMetrics>, std::vector<typename Net::scalar_type>> train_alone(const EnsembleMember& m) {
  Net net(m.init_seed);
  Trainer<Net> trainer(net, m.train, m.test, m.options);
  std::vector<EpochMetrics> history;
  trainer.run(m.epochs, [&](const EpochMetrics& e) {
    history.push_back(e);
    return true;
  });
  return {history, net.parameters()};
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

template <class Net>
void check_members_equal_training_alone(const std::vector<EnsembleMember>& members, index_t workers) {
  EnsembleOptions options;
  options.keep_weights = true;
  options.workers = workers;
  options.accuracy_threshold = 0.5;
  Ensemble<Net> ensemble(members, options);
  std::vector<int> finished(members.size(), 0);
  const auto results = ensemble.run([&](const MemberResult<typename Net::scalar_type>& r, const Net& net) {
    ++finished[static_cast<std::size_t>(r.member)];
    CHECK(net.parameters() == r.weights);  // the callback sees the member's trained network
  });
  REQUIRE(results.size() == members.size());
  for (std::size_t i = 0; i < members.size(); ++i) {
    CAPTURE(i);
    CHECK(finished[i] == 1);
    const auto [history, weights] = train_alone<Net>(members[i]);
    const auto& r = results[i];
    CHECK(r.member == static_cast<index_t>(i));
    CHECK(!r.diverged);
    CHECK(r.weights == weights);  // bit for bit
    REQUIRE(r.history.size() == history.size());
    std::int64_t reached = -1;
    for (std::size_t e = 0; e < history.size(); ++e) {
      CHECK(r.history[e].epoch == history[e].epoch);
      CHECK(same_bits(r.history[e].train_loss, history[e].train_loss));
      CHECK(same_bits(r.history[e].train_accuracy, history[e].train_accuracy));
      CHECK(same_bits(r.history[e].test_loss, history[e].test_loss));
      CHECK(same_bits(r.history[e].test_accuracy, history[e].test_accuracy));
      if (reached < 0 && history[e].tested() && history[e].test_accuracy >= 0.5) reached = history[e].epoch;
    }
    CHECK(r.epoch_reached == reached);
    CHECK(r.last.epoch == members[i].epochs);
  }
  // Members made on demand train the same.
  const auto made = Ensemble<Net>(
                        static_cast<index_t>(members.size()),
                        [&](index_t i) { return members[static_cast<std::size_t>(i)]; }, options)
                        .run();
  REQUIRE(made.size() == results.size());
  for (std::size_t i = 0; i < made.size(); ++i) CHECK(made[i].weights == results[i].weights);
}

TEST_CASE_TEMPLATE("ensemble: each member bit-identical to training it alone (table engine, min/max)", Backend,
                   TINYATTN_TEST_BACKENDS) {
  using Net = AttentionNetwork<Shape<19, 16, 2, 4>, Backend>;
  std::vector<EnsembleMember> members;
  // Own initialisation seed, split seed and training fraction, learning rate and weight decay each.
  const double fractions[] = {0.3, 0.5, 1.0 / 3, 0.7};
  for (std::uint64_t i = 0; i < 4; ++i) {
    const MinMaxTask task(16, 10 + i, fractions[i]);
    EnsembleMember m;
    m.init_seed = i * 7;
    m.train = task.train(), m.test = task.test();
    m.options.adamw = MinMaxTask::adamw();
    m.options.adamw.lr = 2e-3 * static_cast<double>(i + 1);
    m.options.adamw.weight_decay = 0.5 * static_cast<double>(i);
    m.options.eval_every = i == 3 ? 4 : 1;
    m.epochs = 15 + static_cast<std::int64_t>(i) * 3;
    members.push_back(std::move(m));
  }
  check_members_equal_training_alone<Net>(members, 2);
  check_members_equal_training_alone<Net>(members, 1);
}

TEST_CASE("ensemble: each member bit-identical to training it alone (reference engine, minibatches)") {
  using Net = Transformer<Shape<11, 12, 3, 5>, Architecture<n_layers<2>, causal_mask, mlp<12>, loss_at_every_position>>;
  std::vector<EnsembleMember> members;
  for (std::uint64_t i = 0; i < 3; ++i) {
    EnsembleMember m;
    m.init_seed = 40 + i;
    m.train = random_sequences(11, 11, 5, 48, 50 + i, true);
    m.test = random_sequences(11, 11, 5, 20, 60 + i, true);
    m.options.batch_size = 16;
    m.options.shuffle_seed = i;
    m.options.adamw.lr = 1e-2;
    m.epochs = 6;
    members.push_back(std::move(m));
  }
  check_members_equal_training_alone<Net>(members, 3);
}

TEST_CASE("ensemble: a diverging member is recorded with its last good weights, the others go on") {
  using Net = AttentionNetwork<Shape<19, 16, 2, 4>>;
  const MinMaxTask task(16, 1);
  std::vector<EnsembleMember> members(3);
  for (std::size_t i = 0; i < 3; ++i) {
    members[i].init_seed = i;
    members[i].train = task.train(), members[i].test = task.test();
    members[i].options.adamw = MinMaxTask::adamw();
    members[i].epochs = 5;
  }
  members[1].options.adamw.lr = 1e30;  // the first step overflows the weights; epoch 2's loss is not finite
  EnsembleOptions options;
  options.keep_weights = true;
  const auto results = Ensemble<Net>(members, options).run();
  CHECK(!results[0].diverged);
  CHECK(!results[2].diverged);
  REQUIRE(results[1].diverged);
  CHECK(results[1].divergence.find("training diverged at epoch") != std::string::npos);
  CHECK(results[1].last.epoch < 5);
  // Its weights are those before the failing step: training alone to the same epoch gives them.
  Net alone(1);
  Trainer<Net> trainer(alone, task.train(), task.test(), members[1].options);
  CHECK_THROWS_AS(trainer.run(5), DivergenceError);
  CHECK(alone.parameters() == results[1].weights);
  CHECK(results[0].last.epoch == 5);
}

TEST_CASE("ensemble: bad options and members are refused with the value") {
  using Net = AttentionNetwork<Shape<19, 16, 2, 4>>;
  EnsembleOptions bad;
  bad.workers = -1;
  CHECK_THROWS_WITH_AS(Ensemble<Net>({}, bad), "Ensemble: workers must be >= 0 (0: every core), found -1", Error);
  bad.workers = 0;
  bad.accuracy_threshold = 1.5;
  CHECK_THROWS_WITH_AS(Ensemble<Net>({}, bad), "Ensemble: accuracy_threshold must be in [0, 1], found 1.5", Error);
  std::vector<EnsembleMember> members(2);
  members[1].epochs = -3;
  CHECK_THROWS_WITH_AS(Ensemble<Net>{members}, "Ensemble: member 1 has epochs -3, expected >= 0", Error);
  CHECK_THROWS_WITH_AS(Ensemble<Net>(1, [&](index_t) { return members[1]; }).run(),
                       "Ensemble: member 0 has epochs -3, expected >= 0", Error);
  CHECK_THROWS_WITH_AS(Ensemble<Net>(-1, [&](index_t) { return members[0]; }), "Ensemble: size must be >= 0, found -1",
                       Error);
  // A member the Trainer refuses (no training data) stops the run with the Trainer's message.
  members[1].epochs = 1;
  CHECK_THROWS_WITH_AS(Ensemble<Net>(members).run(), "Trainer: the training set is empty", Error);
  CHECK(Ensemble<Net>({}).run().empty());
}

}  // namespace
}  // namespace tinyattn::test
