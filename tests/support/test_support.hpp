// Shared helpers for tinyattn's tests: the backends every typed test runs over, fixtures, comparisons.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "tinyattn/io/safetensors.hpp"
#include "tinyattn/tinyattn.hpp"
#if defined(TINYATTN_HAVE_THRUST)
#include "tinyattn/backend/thrust.hpp"
#endif

// Every backend-independent property is checked over this list (TEST_CASE_TEMPLATE): the Thrust backend
// too where it is built, unless this build checks the model code over the CPU backend only
// (TINYATTN_TEST_CPU_BACKEND_ONLY: the sanitizer builds, tests/CMakeLists.txt's TINYATTN_TEST_THRUST).
#if defined(TINYATTN_HAVE_THRUST) && !defined(TINYATTN_TEST_CPU_BACKEND_ONLY)
#define TINYATTN_TEST_THRUST_BACKEND 1
#define TINYATTN_TEST_BACKENDS tinyattn::backend::cpu, tinyattn::backend::thrust
#else
#define TINYATTN_TEST_BACKENDS tinyattn::backend::cpu
#endif

namespace tinyattn::test {

inline std::string data_path(const std::string& name) { return std::string(TINYATTN_TEST_DATA_DIR) + "/" + name; }

// Worst deviation of `actual` from `expected` under |a - e| <= abs_tol + rel_tol * |e|; the report
// names the element so that a failure says where.
struct Comparison {
  bool ok = true;
  std::size_t worst_index = 0;
  double worst_excess = 0, actual = 0, expected = 0, max_abs_error = 0;
  std::string describe(const std::string& what) const {
    std::ostringstream out;
    out << what << ": element " << worst_index << " is " << actual << ", expected " << expected << " (max |error| "
        << max_abs_error << ")";
    return out.str();
  }
};

template <class A, class E>
Comparison compare(const std::vector<A>& actual, const std::vector<E>& expected, double rel_tol, double abs_tol) {
  Comparison c;
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double a = static_cast<double>(actual[i]), e = static_cast<double>(expected[i]);
    const double err = std::abs(a - e);
    c.max_abs_error = std::max(c.max_abs_error, err);
    const double excess = err - (abs_tol + rel_tol * std::abs(e));
    if (!(excess <= 0) && (c.ok || excess > c.worst_excess)) {
      c.ok = false;
      c.worst_excess = excess;
      c.worst_index = i;
      c.actual = a;
      c.expected = e;
    }
  }
  return c;
}

#define TINYATTN_CHECK_CLOSE(actual, expected, rel, abs_, what)                                \
  do {                                                                                         \
    const auto tinyattn_cmp_ = ::tinyattn::test::compare((actual), (expected), (rel), (abs_)); \
    CHECK_MESSAGE(tinyattn_cmp_.ok, tinyattn_cmp_.describe(what));                             \
  } while (0)

// The reference experiment's trainer options (its AdamW values; the library's defaults are PyTorch's).
inline TrainerOptions reference_options() {
  TrainerOptions options;
  options.adamw = MinMaxTask::adamw();
  return options;
}

// Random token batches for shapes other than the min/max task: tokens uniform in [0, V).
inline TokenBatch random_batch(index_t vocab, index_t context, index_t samples, std::uint64_t seed) {
  SplitMix64 bits(seed);
  TokenBatch batch;
  batch.context = context;
  for (index_t n = 0; n < samples; ++n) {
    for (index_t t = 0; t < context; ++t) batch.tokens.push_back(static_cast<index_t>(bits.next() % vocab));
    batch.targets.push_back(static_cast<index_t>(bits.next() % vocab));
  }
  return batch;
}

// Random sequences for any architecture: tokens in [0, vocab), targets in [0, vocab_out) — one per
// sample (the last position), or (every_position) one per position with about a quarter unscored (-1).
inline TokenBatch random_sequences(index_t vocab, index_t vocab_out, index_t context, index_t samples,
                                   std::uint64_t seed, bool every_position) {
  SplitMix64 bits(seed);
  TokenBatch batch;
  batch.context = context;
  for (index_t n = 0; n < samples; ++n) {
    for (index_t t = 0; t < context; ++t) batch.tokens.push_back(static_cast<index_t>(bits.next() % vocab));
    for (index_t t = every_position ? 0 : context - 1; t < context; ++t) {
      const bool scored = !every_position || bits.next() % 4 != 0;
      batch.targets.push_back(scored ? static_cast<index_t>(bits.next() % vocab_out) : index_t{-1});
    }
  }
  return batch;
}

// As random_batch, but the last token is one of the first `query_tokens` tokens, as in the min/max
// task ('=' always last): few query rows, so the CPU backend mixes the rebased logit table.
inline TokenBatch few_query_batch(index_t vocab, index_t context, index_t samples, std::uint64_t seed,
                                  index_t query_tokens) {
  TokenBatch batch = random_batch(vocab, context, samples, seed);
  for (index_t n = 0; n < samples; ++n) {
    index_t& last = batch.tokens[static_cast<std::size_t>(n) * context + context - 1];
    last %= query_tokens;
  }
  return batch;
}

// Whether the logit table is rebased on the query row for this batch (RowTables, rebase_logits).
template <class Shape, class Backend>
bool rebased_for(const TokenBatch& batch) {
  return rebase_logits<Shape, Backend>(RowSpace(Shape::vocab, Shape::context, {std::cref(batch)}));
}

}  // namespace tinyattn::test
