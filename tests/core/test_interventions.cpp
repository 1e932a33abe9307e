// Ablation and patching (model/interventions.hpp): each checked against an independent computation.
#include "../support/test_support.hpp"

namespace tinyattn::test {
namespace {

using TwoLayers =
    Architecture<n_layers<2>, causal_mask, mlp<12>, trainable_biases, untied_unembedding, loss_at_every_position>;

template <class Net>
Net scrambled(std::uint64_t seed) {
  Net net(seed);
  SplitMix64 bits(seed + 100);
  std::vector<typename Net::scalar_type> p = net.parameters();
  for (const TensorSpec& spec : Net::Layout::tensors())
    if (spec.kind == TensorKind::bias)
      for (std::size_t i = 0; i < spec.count(); ++i)
        p[spec.offset + i] = static_cast<typename Net::scalar_type>((bits.next() % 1000) / 2000.0 - 0.25);
  net.set_parameters(p);
  return net;
}

template <class Net>
Net without_head_output(const Net& net, index_t layer, index_t head) {
  Net copy = net;
  std::vector<typename Net::scalar_type> p = copy.parameters();
  const std::size_t w_o = Net::Layout::block(layer) + Net::Layout::Block::W_O;
  const std::size_t per_head = static_cast<std::size_t>(Net::head_dim) * Net::d_model;
  std::fill(p.begin() + static_cast<std::ptrdiff_t>(w_o + head * per_head),
            p.begin() + static_cast<std::ptrdiff_t>(w_o + (head + 1) * per_head), typename Net::scalar_type(0));
  copy.set_parameters(p);
  return copy;
}

TEST_CASE_TEMPLATE("zero-ablating a head equals the forward without that head's term (W_O[h] = 0), on both engines",
                   Backend, TINYATTN_TEST_BACKENDS) {
  SUBCASE("the reference architecture: the table engine evaluates the model without the head") {
    using Net = AttentionNetwork<ReferenceShape, Backend, double>;
    const Net net(3);
    const MinMaxTask task(128, 3);
    const TokenBatch batch = task.batch({0, 5, 17, 300, 4000, 16384, 20000, 32767});
    for (index_t head = 0; head < Net::heads; ++head) {
      Interventions<double> iv;
      iv.zero_ablate(0, head);
      const Net without = without_head_output(net, 0, head);
      const Evaluation ablated = net.evaluate(batch, iv);
      const Evaluation table = without.evaluate(batch, LogitPath::automatic, ScorePath::automatic, Engine::table);
      CHECK(ablated.loss == doctest::Approx(table.loss).epsilon(1e-12));
      CHECK(ablated.correct == table.correct);
      TINYATTN_CHECK_CLOSE(net.last_logits(batch, iv), without.last_logits(batch), 1e-12, 1e-12, "ablated logits");
    }
  }
  SUBCASE("two layers with MLPs and biases: every head of both layers") {
    using Net = Transformer<Shape<11, 12, 3, 5>, TwoLayers, Backend, double>;
    const Net net = scrambled<Net>(4);
    const TokenBatch batch = random_sequences(11, 11, 5, 30, 71, true);
    for (index_t layer = 0; layer < 2; ++layer)
      for (index_t head = 0; head < Net::heads; ++head) {
        Interventions<double> iv;
        iv.zero_ablate(layer, head);
        const Net without = without_head_output(net, layer, head);
        const auto a = net.inspect(batch, {"logits"}, iv), b = without.inspect(batch, {"logits"});
        TINYATTN_CHECK_CLOSE(a["logits"].values, b["logits"].values, 1e-12, 1e-12, "ablated logits");
      }
  }
}

TEST_CASE("mean ablation puts the stated mean in hook_z and its image in hook_attn_out") {
  using Net = Transformer<Shape<11, 12, 3, 5>, TwoLayers, backend::cpu, double>;
  const Net net = scrambled<Net>(5);
  const TokenBatch reference = random_sequences(11, 11, 5, 40, 72, true),
                   batch = random_sequences(11, 11, 5, 9, 73, true);
  const std::vector<double> mean = head_mean(net.inspect(reference, {"blocks.1.attn.hook_z"}), 1, 2);  // (T, dh)
  Interventions<double> iv;
  iv.mean_ablate(1, 2, mean);
  const auto cache = net.inspect(batch, {}, iv);
  const auto& z = cache["blocks.1.attn.hook_z"];            // (N, T, H, dh)
  const auto& result = cache["blocks.1.attn.hook_result"];  // (N, T, H, D)
  const auto& out = cache["blocks.1.hook_attn_out"];        // (N, T, D)
  const std::vector<double> w_o = net.tensor("blocks.1.attn.W_O"), b_o = net.tensor("blocks.1.attn.b_O");
  constexpr index_t T = 5, H = 3, dh = Net::head_dim, D = 12;
  for (index_t n = 0; n < 9; ++n)
    for (index_t t = 0; t < T; ++t) {
      for (index_t e = 0; e < dh; ++e)
        CHECK(z.values[((n * T + t) * H + 2) * dh + e] == mean[static_cast<std::size_t>(t * dh + e)]);
      for (index_t d = 0; d < D; ++d) {
        double expected = b_o[static_cast<std::size_t>(d)];
        for (index_t h = 0; h < H; ++h) expected += result.values[((n * T + t) * H + h) * D + d];
        double image = 0;
        for (index_t e = 0; e < dh; ++e)
          image += mean[static_cast<std::size_t>(t * dh + e)] * w_o[static_cast<std::size_t>((2 * dh + e) * D + d)];
        CHECK(result.values[((n * T + t) * H + 2) * D + d] == doctest::Approx(image).epsilon(1e-12));
        CHECK(out.values[(n * T + t) * D + d] == doctest::Approx(expected).epsilon(1e-10));
      }
    }
}

TEST_CASE_TEMPLATE("patching: a batch into itself changes nothing — from another batch, exactly the patched part",
                   Backend, TINYATTN_TEST_BACKENDS) {
  using Net = Transformer<Shape<11, 12, 3, 5>, TwoLayers, Backend, double>;
  const Net net = scrambled<Net>(6);
  const TokenBatch target = random_sequences(11, 11, 5, 12, 74, true),
                   source = random_sequences(11, 11, 5, 12, 75, true);
  const auto clean = net.inspect(target), other = net.inspect(source);

  SUBCASE("into itself") {
    Interventions<double> iv;
    iv.patch_head(0, 1, clean).patch_head(1, 2, clean).patch_residual(1, 3, clean);
    const auto patched = net.inspect(target, {}, iv);
    for (const std::string& name : clean.names()) {
      INFO(name);
      CHECK(patched[name].values == clean[name].values);
    }
  }
  SUBCASE("a head of layer 1 from another batch") {
    Interventions<double> iv;
    iv.patch_head(1, 2, other);
    const auto patched = net.inspect(target, {}, iv);
    const auto& z = patched["blocks.1.attn.hook_z"].values;
    const auto& z_clean = clean["blocks.1.attn.hook_z"].values;
    const auto& z_other = other["blocks.1.attn.hook_z"].values;
    const index_t dh = Net::head_dim;
    for (std::size_t r = 0; r < 12 * 5; ++r)
      for (index_t h = 0; h < 3; ++h)
        for (index_t e = 0; e < dh; ++e) {
          const std::size_t i = (r * 3 + static_cast<std::size_t>(h)) * dh + e;
          CHECK(z[i] == (h == 2 ? z_other[i] : z_clean[i]));
        }
    for (const char* name : {"blocks.0.hook_resid_post", "blocks.1.attn.hook_pattern", "blocks.1.hook_resid_pre"})
      CHECK(patched[name].values == clean[name].values);  // before the patch, or not depending on it
    CHECK(patched["logits"].values != clean["logits"].values);
  }
  SUBCASE("the residual stream at one position: only that position and later ones change (causal)") {
    Interventions<double> iv;
    iv.patch_residual(1, 3, other);
    const auto patched = net.inspect(target, {}, iv);
    const auto& x = patched["blocks.1.hook_resid_pre"].values;
    const auto& x_clean = clean["blocks.1.hook_resid_pre"].values;
    const auto& x_other = other["blocks.1.hook_resid_pre"].values;
    const auto& out = patched["blocks.1.hook_resid_post"].values;
    const auto& out_clean = clean["blocks.1.hook_resid_post"].values;
    for (index_t n = 0; n < 12; ++n)
      for (index_t t = 0; t < 5; ++t)
        for (index_t d = 0; d < 12; ++d) {
          const std::size_t i = (static_cast<std::size_t>(n) * 5 + t) * 12 + d;
          CHECK(x[i] == (t == 3 ? x_other[i] : x_clean[i]));
          if (t < 3) CHECK(out[i] == out_clean[i]);  // a causal mask: earlier positions never see position 3
        }
  }
}

TEST_CASE("bad interventions are refused with what and where") {
  using Net = Transformer<Shape<11, 12, 3, 5>, TwoLayers, backend::cpu, float>;
  const Net net(1);
  const TokenBatch batch = random_sequences(11, 11, 5, 4, 76, true);
  Interventions<float> iv;
  iv.zero_ablate(2, 0);
  CHECK_THROWS_WITH_AS(net.inspect(batch, {}, iv), "Interventions: layer 2 outside [0, 2)", Error);
  Interventions<float> head;
  head.zero_ablate(0, 3);
  CHECK_THROWS_WITH_AS(net.evaluate(batch, head), "Interventions: head 3 outside [0, 3)", Error);
  const auto other = net.inspect(random_sequences(11, 11, 5, 6, 77, true), {"blocks.0.attn.hook_z"});
  Interventions<float> sizes;
  sizes.patch_head(0, 1, other);
  CHECK_THROWS_WITH_AS(net.last_logits(batch, sizes),
                       "Interventions: head 1 of layer 0 has 120 values, expected 80 (the source batch must have as "
                       "many samples as this one)",
                       Error);
}

}  // namespace
}  // namespace tinyattn::test
