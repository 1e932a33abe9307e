// Parity with PyTorch: the library must reproduce the reference script's numbers from the same
// initial weights. Fixtures: tests/data/golden_*.safetensors (see tests/data/README.md).
//
// Tolerances (float32 on both sides; differences come from summation order only):
//   probe logits, attention scores and pattern   |a - e| <= 1e-6 + 1e-5 |e|
//   training loss                                 |a - e| <= 1e-5 |e|
//   gradients                                     |a - e| <= 1e-4 |e| + 1e-4 max|e| (per tensor)
//   weights after 1 and 5 AdamW steps             |a - e| <= 1e-5
#include "../support/test_support.hpp"

namespace tinyattn::test {
namespace {

template <class Net>
std::vector<float> golden_tensors(const io::SafetensorsFile& file, const std::string& prefix) {
  std::vector<float> flat(Net::parameter_count);
  for (const auto& spec : Net::Layout::tensors()) {
    const auto values = file.read<float>(prefix + spec.notebook_name, spec.shape);
    std::copy(values.begin(), values.end(), flat.begin() + static_cast<std::ptrdiff_t>(spec.offset));
  }
  return flat;
}

template <class Net>
void check_tensors(const std::vector<float>& actual, const std::vector<float>& expected, double rel, double abs_,
                   double rel_of_max, const std::string& what) {
  for (const auto& spec : Net::Layout::tensors()) {
    const auto first = static_cast<std::ptrdiff_t>(spec.offset),
               last = first + static_cast<std::ptrdiff_t>(spec.count());
    const std::vector<float> a(actual.begin() + first, actual.begin() + last);
    const std::vector<float> e(expected.begin() + first, expected.begin() + last);
    double max_abs = 0;
    for (float v : e) max_abs = std::max(max_abs, static_cast<double>(std::abs(v)));
    const auto cmp = compare(a, e, rel, abs_ + rel_of_max * max_abs);
    MESSAGE(what << " " << std::string(spec.short_name) << ": max |error| " << cmp.max_abs_error << " (max |value| "
                 << max_abs << ")");
    CHECK_MESSAGE(cmp.ok, cmp.describe(what + " " + spec.short_name));
  }
}

template <class Shape, class Backend>
void check_golden(const std::string& fixture, LogitPath path, ScorePath scores = ScorePath::automatic,
                  Engine engine = Engine::table) {
  using Net = AttentionNetwork<Shape, Backend, float>;
  const auto golden = io::SafetensorsFile::load(data_path(fixture));
  const std::uint64_t seed = std::stoull(golden.metadata().at("seed"));
  REQUIRE(std::stoi(golden.metadata().at("d_model")) == Shape::d_model);
  REQUIRE(std::stoi(golden.metadata().at("heads")) == Shape::heads);

  Net net;
  net.set_parameters(golden_tensors<Net>(golden, "init."));
  const MinMaxTask task(128, seed);

  // The split: CPython's random.Random(seed).shuffle, reproduced exactly.
  const auto train_indices = golden.read<std::int32_t>("train_indices");
  CHECK(
      std::equal(train_indices.begin(), train_indices.end(), task.train_indices().begin(), task.train_indices().end()));

  // Probe: full forward of 64 samples.
  const auto probe = golden.read<std::int32_t>("probe_indices");
  const auto cache = net.inspect(task.batch(std::vector<index_t>(probe.begin(), probe.end())));
  std::vector<float> logits_last;
  for (index_t n = 0; n < cache.samples; ++n) {
    const float* l = cache.logits_at(n, Shape::context - 1);
    logits_last.insert(logits_last.end(), l, l + Shape::vocab);
  }
  TINYATTN_CHECK_CLOSE(logits_last, golden.read<float>("probe.logits_last"), 1e-5, 1e-6, "probe logits");
  TINYATTN_CHECK_CLOSE(cache["blocks.0.attn.scores"].values, golden.read<float>("probe.attention_scores"), 1e-5, 1e-6,
                       "attention scores");
  TINYATTN_CHECK_CLOSE(cache["blocks.0.attn.hook_pattern"].values, golden.read<float>("probe.attention_pattern"), 1e-5,
                       1e-6, "attention pattern");

  // Loss and gradients at the initial weights, then the weights after 1 and 5 AdamW steps.
  TrainerOptions options;
  options.adamw = MinMaxTask::adamw();
  options.engine = engine;
  options.logit_path = path;
  options.score_path = scores;
  Trainer<Net> trainer(net, task.train(), TokenBatch{}, options);
  const Evaluation initial = trainer.compute_gradients();
  const double expected_loss = golden.read<float>("init.train_loss")[0];
  MESSAGE("train loss " << initial.loss << " vs " << expected_loss);
  CHECK(std::abs(initial.loss - expected_loss) <= 1e-5 * std::abs(expected_loss));
  check_tensors<Net>(trainer.gradients(), golden_tensors<Net>(golden, "grad."), 1e-4, 0.0, 1e-4, "gradient");

  trainer.train_epoch();
  check_tensors<Net>(net.parameters(), golden_tensors<Net>(golden, "step1."), 0.0, 1e-5, 0.0, "step 1");
  for (int i = 0; i < 4; ++i) trainer.train_epoch();
  check_tensors<Net>(net.parameters(), golden_tensors<Net>(golden, "step5."), 0.0, 1e-5, 0.0, "step 5");
}

TEST_CASE_TEMPLATE("golden parity with PyTorch, reference shape, both logit paths", Backend, TINYATTN_TEST_BACKENDS) {
  const std::string file = "golden_reference.safetensors";
  SUBCASE("logit table, score table") {
    check_golden<ReferenceShape, Backend>(file, LogitPath::logit_table, ScorePath::table);
  }
  SUBCASE("logit table, per-sample scores") {
    check_golden<ReferenceShape, Backend>(file, LogitPath::logit_table, ScorePath::per_sample);
  }
  SUBCASE("direct, score table") { check_golden<ReferenceShape, Backend>(file, LogitPath::direct, ScorePath::table); }
  SUBCASE("direct, per-sample scores") {
    check_golden<ReferenceShape, Backend>(file, LogitPath::direct, ScorePath::per_sample);
  }
  SUBCASE("reference engine") {
    check_golden<ReferenceShape, Backend>(file, LogitPath::automatic, ScorePath::automatic, Engine::reference);
  }
}

TEST_CASE_TEMPLATE("golden parity with PyTorch, D=24 H=3 seed 7, both logit paths", Backend, TINYATTN_TEST_BACKENDS) {
  using S = Shape<131, 24, 3, 4>;
  SUBCASE("logit table") { check_golden<S, Backend>("golden_d24_h3_seed7.safetensors", LogitPath::logit_table); }
  SUBCASE("direct") { check_golden<S, Backend>("golden_d24_h3_seed7.safetensors", LogitPath::direct); }
  SUBCASE("reference engine") {
    check_golden<S, Backend>("golden_d24_h3_seed7.safetensors", LogitPath::automatic, ScorePath::automatic,
                             Engine::reference);
  }
}

}  // namespace
}  // namespace tinyattn::test
