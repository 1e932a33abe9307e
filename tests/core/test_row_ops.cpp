// The CPU backend's vectorized row operations (backend/cpu_row_ops.hpp) against double-precision
// references and against the portable GenericRowOps they replace: exp, cross-entropy (loss, first
// argmax with ties, gradient) and the row mixes, for widths that are and are not whole vectors.
#include <cmath>
#include <limits>
#include <vector>

#include "../support/test_support.hpp"
#include "tinyattn/backend/cpu_row_ops.hpp"

namespace tinyattn::test {
namespace {

constexpr Team kOne{0, 1};

#if TINYATTN_HOST_SIMD
// Relative error in units of the float spacing at the reference value.
double ulps(float got, double want) {
  const double spacing = std::ldexp(1.0, std::ilogb(static_cast<float>(want)) - 23);
  return std::abs(static_cast<double>(got) - want) / spacing;
}

// The exp of the cross-entropy rows, on 16 values (one or two vectors).
void simd_exp(const float* x, float* y) {
  for (index_t l = 0; l < 16; l += simd::kLanes) simd::store(y + l, simd::exp(simd::load(x + l)));
}

TEST_CASE("simd::exp: within 2 ulp on the softmax range, NaN stays NaN, far below underflows to ~0") {
  double worst = 0;
  for (int i = 0; i <= 87 * 4096; i += 16) {
    float x[16], y[16];
    for (int l = 0; l < 16; ++l) x[l] = -static_cast<float>(std::min(i + l, 87 * 4096)) / 4096.0f;
    simd_exp(x, y);
    for (int l = 0; l < 16; ++l) worst = std::max(worst, ulps(y[l], std::exp(static_cast<double>(x[l]))));
  }
  CHECK(worst <= 2.0);
  MESSAGE("worst error on [-87, 0]: " << worst << " ulp");

  float x[16] = {std::numeric_limits<float>::quiet_NaN(), -1e30f, -200.0f, -100.0f, 0.0f, -0.5f};
  float y[16];
  simd_exp(x, y);
  CHECK(std::isnan(y[0]));
  for (int l = 1; l <= 3; ++l) {
    CHECK(y[l] >= 0.0f);
    CHECK(y[l] <= 1e-37f);
  }
  CHECK(y[4] == 1.0f);
  CHECK(ulps(y[5], std::exp(-0.5)) <= 2.0);
}
#endif

// Reference cross-entropy in double: loss, first argmax, gradient (softmax - onehot) * scale.
struct Reference {
  double loss;
  index_t argmax;
  std::vector<double> grad;
};
Reference reference_cross_entropy(const std::vector<float>& logits, index_t v, index_t target, double scale) {
  index_t best = 0;
  for (index_t c = 1; c < v; ++c)
    if (logits[c] > logits[best]) best = c;
  double total = 0;
  for (index_t c = 0; c < v; ++c) total += std::exp(static_cast<double>(logits[c]) - logits[best]);
  Reference r{std::log(total) + logits[best] - logits[target], best, std::vector<double>(v)};
  for (index_t c = 0; c < v; ++c)
    r.grad[c] = (std::exp(static_cast<double>(logits[c]) - logits[best]) / total - (c == target)) * scale;
  return r;
}

template <index_t V, index_t Vp>
void check_cross_entropy(std::uint64_t seed) {
  SplitMix64 rng(seed);
  NormalGenerator normal(seed + 1);
  for (int trial = 0; trial < 400; ++trial) {
    std::vector<float> logits(Vp, 0.0f);
    const float spread = trial % 4 == 0 ? 30.0f : 3.0f;
    for (index_t c = 0; c < V; ++c) logits[c] = spread * static_cast<float>(normal.next());
    // Pad lanes hold garbage on purpose: they must be ignored.
    for (index_t c = V; c < Vp; ++c) logits[c] = 1e4f;
    index_t target = static_cast<index_t>(rng.next() % V);
    if (trial % 3 == 0) {  // ties for the maximum, the target on either side of the first one
      const index_t a = static_cast<index_t>(rng.next() % V), b = static_cast<index_t>(rng.next() % V);
      logits[a] = logits[b] = 100.0f;
      target = trial % 2 ? a : b;
    }
    if (trial % 5 == 0) logits[target] = 200.0f;  // the target is the unique maximum
    const Reference want = reference_cross_entropy(logits, V, target, 0.25);
    std::vector<float> grad(Vp, -9.0f), generic_grad(Vp, -9.0f);
    const CrossEntropyResult got = CpuRowOps::cross_entropy<V, Vp>(logits.data(), target, 0.25f, grad.data(), kOne);
    const CrossEntropyResult generic =
        GenericRowOps<1>::cross_entropy<V, Vp>(logits.data(), target, 0.25f, generic_grad.data(), kOne);
    const CrossEntropyResult eval_only =
        CpuRowOps::cross_entropy<V, Vp>(logits.data(), target, 0.25f, static_cast<float*>(nullptr), kOne);
    CHECK_MESSAGE(std::abs(got.loss - want.loss) <= 1e-6 + 1e-6 * std::abs(want.loss),
                  "V " << V << " trial " << trial << ": loss " << got.loss << ", want " << want.loss);
    CHECK(eval_only.loss == got.loss);
    CHECK(got.correct == (want.argmax == target));
    CHECK(eval_only.correct == got.correct);
    CHECK(generic.correct == got.correct);
    CHECK(std::abs(generic.loss - got.loss) <= 1e-6 + 1e-6 * std::abs(want.loss));
    double worst = 0;
    for (index_t c = 0; c < V; ++c) worst = std::max(worst, std::abs(grad[c] - want.grad[c]));
    // A few float ulps of the scale 0.25 (3e-8 each), as below: 1.2e-7 measured where the portable
    // loops run (x86 without AVX-512).
    CHECK(worst <= 3e-7);
  }
  // A NaN anywhere makes the loss NaN.
  std::vector<float> logits(Vp, 0.0f);
  logits[V / 2] = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(CpuRowOps::cross_entropy<V, Vp>(logits.data(), 0, 1.0f, static_cast<float*>(nullptr), kOne).loss));
}

TEST_CASE("CpuRowOps::cross_entropy: loss, first argmax and gradient as a double reference, any width") {
  check_cross_entropy<131, 144>(1);  // the reference vocabulary, padded to 9 vectors of 16 (18 of 8)
  check_cross_entropy<16, 16>(2);    // one whole vector, no padding
  check_cross_entropy<17, 32>(3);    // one lane into the second vector
  check_cross_entropy<64, 64>(4);
  check_cross_entropy<3, 32>(6);  // padding over more than one vector (two of 16 lanes, four of 8)
  check_cross_entropy<5, 5>(5);   // not a whole vector: the portable loops
}

// The reference engine's and the MLP head's cross-entropy (layers/cross_entropy.hpp): rows of any
// width, the first argmax on ties, rows without a target.
TEST_CASE("layers::cross_entropy_forward_backward: loss, first argmax, gradient, unscored rows") {
  for (const index_t V : {5, 64, 113}) {
    SplitMix64 rng(static_cast<std::uint64_t>(V));
    NormalGenerator normal(static_cast<std::uint64_t>(V) + 1);
    const index_t rows = 300;
    std::vector<float> logits(static_cast<std::size_t>(rows) * V);
    std::vector<index_t> targets(rows);
    for (index_t r = 0; r < rows; ++r) {
      float* l = logits.data() + static_cast<std::ptrdiff_t>(r) * V;
      for (index_t c = 0; c < V; ++c) l[c] = (r % 4 == 0 ? 30.0f : 3.0f) * static_cast<float>(normal.next());
      targets[r] = r % 7 == 6 ? -1 : static_cast<index_t>(rng.next() % V);
      if (r % 3 == 0) {  // ties for the maximum
        const index_t a = static_cast<index_t>(rng.next() % V), b = static_cast<index_t>(rng.next() % V);
        l[a] = l[b] = 100.0f;
        if (targets[r] >= 0) targets[r] = r % 2 ? a : b;
      }
    }
    std::vector<float> grads = logits, loss(rows, -1.0f), eval_loss(rows, -1.0f);
    std::vector<index_t> correct(rows, -1), eval_correct(rows, -1);
    layers::cross_entropy_forward_backward<backend::cpu>(grads.data(), targets.data(), loss.data(), correct.data(),
                                                         rows, V, 0.25f, /*gradient=*/true);
    std::vector<float> kept = logits;
    layers::cross_entropy_forward_backward<backend::cpu>(kept.data(), targets.data(), eval_loss.data(),
                                                         eval_correct.data(), rows, V, 0.25f, /*gradient=*/false);
    CHECK(kept == logits);  // evaluation leaves the logits as they were
    for (index_t r = 0; r < rows; ++r) {
      INFO("V " << V << " row " << r);
      CHECK(eval_loss[r] == loss[r]);
      CHECK(eval_correct[r] == correct[r]);
      if (targets[r] < 0) {
        CHECK(loss[r] == 0.0f);
        CHECK(correct[r] == 0);
        for (index_t c = 0; c < V; ++c) CHECK(grads[static_cast<std::size_t>(r) * V + c] == 0.0f);
        continue;
      }
      const std::vector<float> row(logits.begin() + static_cast<std::ptrdiff_t>(r) * V,
                                   logits.begin() + static_cast<std::ptrdiff_t>(r + 1) * V);
      const Reference want = reference_cross_entropy(row, V, targets[r], 0.25);
      CHECK(std::abs(loss[r] - want.loss) <= 1e-5 + 1e-6 * std::abs(want.loss));
      CHECK(correct[r] == (want.argmax == targets[r] ? 1 : 0));
      double worst = 0;
      for (index_t c = 0; c < V; ++c)
        worst = std::max(worst, std::abs(grads[static_cast<std::size_t>(r) * V + c] - want.grad[c]));
      // A few float ulps of the scale 0.25 (3e-8 each): math::exp is within 2 ulp, and the sum, the
      // division and the scale round again (1.3e-7 measured in the -O1 sanitizer build).
      CHECK(worst <= 3e-7);
    }
  }
}

template <index_t Width, index_t J>
void check_mix_and_dots(std::uint64_t seed) {
  NormalGenerator normal(seed);
  std::vector<float> table(J * Width), w(J), g(Width);
  for (auto& x : table) x = static_cast<float>(normal.next());
  for (auto& x : w) x = static_cast<float>(normal.next());
  for (auto& x : g) x = static_cast<float>(normal.next());
  const float* rows[J];
  for (index_t j = 0; j < J; ++j) rows[j] = table.data() + (J - 1 - j) * Width;  // rows in any order
  float fast[Width], slow[Width], fast_dots[J], slow_dots[J];
  CpuRowOps::mix<Width, J>(rows, w.data(), fast, kOne);
  GenericRowOps<1>::mix<Width, J>(rows, w.data(), slow, kOne);
  for (index_t c = 0; c < Width; ++c) CHECK(fast[c] == doctest::Approx(slow[c]).epsilon(1e-5));
  CpuRowOps::dots<Width, J>(g.data(), rows, fast_dots, kOne);
  for (index_t j = 0; j < J; ++j) {
    double want = 0;
    for (index_t c = 0; c < Width; ++c) want += static_cast<double>(g[c]) * rows[j][c];
    CHECK_MESSAGE(std::abs(fast_dots[j] - want) <= 1e-5 * (1 + std::abs(want)),
                  "Width " << Width << " J " << J << " row " << j);
  }
  GenericRowOps<1>::dots<Width, J>(g.data(), rows, slow_dots, kOne);
  for (index_t j = 0; j < J; ++j) CHECK(fast_dots[j] == doctest::Approx(slow_dots[j]).epsilon(1e-5));
}

TEST_CASE("CpuRowOps::mix and dots agree with double references and the portable loops") {
  check_mix_and_dots<48, 9>(11);   // 9 rows: one at a time
  check_mix_and_dots<144, 8>(12);  // 8 rows: the horizontal sums folded together (reference shape)
  check_mix_and_dots<16, 16>(13);  // two groups of 8
  check_mix_and_dots<144, 17>(14);
  check_mix_and_dots<5, 8>(15);  // not whole vectors: the portable loops
}

}  // namespace
}  // namespace tinyattn::test
