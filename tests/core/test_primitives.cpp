// The conformance suite of Primitives<Backend> (backend/primitives.hpp): every operation against a naive
// loop, on every backend, odd sizes included. A new backend passes this before anything else runs on it.
#include "../support/test_support.hpp"

#include <numeric>
#include <type_traits>

namespace tinyattn::test {
namespace {

std::vector<double> random_values(std::size_t n, std::uint64_t seed) {
  SplitMix64 bits(seed);
  std::vector<double> v(n);
  for (double& x : v) x = static_cast<double>(bits.next() % 2001) / 1000.0 - 1.0;
  return v;
}

template <class Backend, class T>
typename Primitives<Backend>::template buffer<T> on_backend(const std::vector<T>& host) {
  typename Primitives<Backend>::template buffer<T> b;
  Primitives<Backend>::upload(b, host.data(), host.size());
  return b;
}

template <class Backend, class T>
std::vector<T> to_host(const typename Primitives<Backend>::template buffer<T>& b) {
  std::vector<T> host(b.size());
  Primitives<Backend>::download(b, host.data());
  return host;
}

TEST_CASE_TEMPLATE("primitives: storage — allocate (zeroed), upload, download, copy, fill, host copies", Backend,
                   TINYATTN_TEST_BACKENDS) {
  using P = Primitives<Backend>;
  typename P::template buffer<double> b;
  P::allocate(b, 37);
  CHECK(to_host<Backend>(b) == std::vector<double>(37, 0.0));
  const std::vector<double> v = random_values(37, 1);
  P::upload(b, v.data(), v.size());
  CHECK(to_host<Backend>(b) == v);
  typename P::template buffer<double> c;
  P::allocate(c, 37);
  P::copy(P::data(b) + 3, P::data(c) + 5, 20);
  std::vector<double> expected(37, 0.0);
  std::copy(v.begin() + 3, v.begin() + 23, expected.begin() + 5);
  CHECK(to_host<Backend>(c) == expected);
  P::fill(P::data(c) + 30, 7, 2.5);
  std::fill(expected.begin() + 30, expected.end(), 2.5);
  CHECK(to_host<Backend>(c) == expected);
  const std::vector<double> w = random_values(11, 2);
  P::copy_from_host(w.data(), P::data(c) + 1, w.size());
  std::copy(w.begin(), w.end(), expected.begin() + 1);
  CHECK(to_host<Backend>(c) == expected);
  std::vector<double> out(11);
  P::copy_to_host(P::data(c) + 1, out.data(), out.size());
  CHECK(out == w);
}

template <class T>
struct Square {
  T* out;
  const T* in;
  TINYATTN_HD void operator()(index_t i) const { out[i] = in[i] * in[i] + T(i); }
};
template <class T>
struct RowColumns {
  T* out;
  index_t cols;
  TINYATTN_HD void operator()(index_t r, index_t c0, index_t c1) const {
    for (index_t c = c0; c < c1; ++c) out[static_cast<std::ptrdiff_t>(r) * cols + c] += T(r * 1000 + c);
  }
};
struct TeamItem {
  index_t* out;
  TINYATTN_HD void operator()(index_t i, Team team) const {
    if (team.lane == 0) out[i] = 3 * i + 1;
  }
};

TEST_CASE_TEMPLATE("primitives: for_each, for_each_simd, for_each_team, for_each_row visit every item once", Backend,
                   TINYATTN_TEST_BACKENDS) {
  using P = Primitives<Backend>;
  for (index_t n : {0, 1, 63, 64, 65, 1000, 4097}) {
    INFO("n = " << n);
    const std::vector<double> in = random_values(static_cast<std::size_t>(n), 3);
    auto src = on_backend<Backend>(in);
    typename P::template buffer<double> out;
    P::allocate(out, static_cast<std::size_t>(n));
    std::vector<double> expected(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i)
      expected[static_cast<std::size_t>(i)] = in[static_cast<std::size_t>(i)] * in[static_cast<std::size_t>(i)] + i;
    P::for_each(n, Square<double>{P::data(out), P::data(src)});
    CHECK(to_host<Backend>(out) == expected);
    P::fill(P::data(out), static_cast<std::size_t>(n), 0.0);
    P::for_each_simd(n, Square<double>{P::data(out), P::data(src)});
    CHECK(to_host<Backend>(out) == expected);
    typename P::template buffer<index_t> items;
    P::allocate(items, static_cast<std::size_t>(n));
    P::for_each_team(n, TeamItem{P::data(items)});
    std::vector<index_t> expected_items(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) expected_items[static_cast<std::size_t>(i)] = 3 * i + 1;
    CHECK(to_host<Backend>(items) == expected_items);
  }
  for (auto [rows, cols] : {std::pair<index_t, index_t>{1, 1}, {7, 13}, {300, 5}, {9, 1000}}) {
    typename P::template buffer<double> grid;
    P::allocate(grid, static_cast<std::size_t>(rows) * cols);
    P::for_each_row(rows, cols, RowColumns<double>{P::data(grid), cols});
    const std::vector<double> got = to_host<Backend>(grid);
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < cols; ++c) CHECK(got[static_cast<std::size_t>(r) * cols + c] == r * 1000 + c);
  }
}

TEST_CASE_TEMPLATE("primitives: for_each_task runs every task once, on a worker below `workers`", Backend,
                   TINYATTN_TEST_BACKENDS) {
  using P = Primitives<Backend>;
  for (index_t tasks : {0, 1, 2, 5, 33}) {
    std::vector<int> runs(static_cast<std::size_t>(tasks), 0);
    std::vector<index_t> worker_of(static_cast<std::size_t>(tasks), -1);
    P::for_each_task(tasks, 2, [&](index_t t, index_t worker) {
      ++runs[static_cast<std::size_t>(t)];
      worker_of[static_cast<std::size_t>(t)] = worker;
    });
    for (index_t t = 0; t < tasks; ++t) {
      CHECK(runs[static_cast<std::size_t>(t)] == 1);
      CHECK(worker_of[static_cast<std::size_t>(t)] >= 0);
      CHECK(worker_of[static_cast<std::size_t>(t)] < std::max<index_t>(1, std::min<index_t>(2, P::max_workers())));
    }
  }
}

// C (m x n) [+]= op(A) op(B), batched, or summed over the batch.
std::vector<double> naive_gemm(const GemmArgs<double>& g, const std::vector<double>& c_in) {
  std::vector<double> c = c_in;
  const index_t outputs = g.sum_batches ? 1 : g.batch;
  for (index_t out = 0; out < outputs; ++out)
    for (index_t i = 0; i < g.m; ++i)
      for (index_t j = 0; j < g.n; ++j) {
        double acc = 0;
        for (index_t b = g.sum_batches ? 0 : out; b < (g.sum_batches ? g.batch : out + 1); ++b)
          for (index_t l = 0; l < g.k; ++l) {
            const double a = g.trans_a ? g.a[b * g.stride_a + static_cast<std::ptrdiff_t>(l) * g.lda + i]
                                       : g.a[b * g.stride_a + static_cast<std::ptrdiff_t>(i) * g.lda + l];
            const double bb = g.trans_b ? g.b[b * g.stride_b + static_cast<std::ptrdiff_t>(j) * g.ldb + l]
                                        : g.b[b * g.stride_b + static_cast<std::ptrdiff_t>(l) * g.ldb + j];
            acc += a * bb;
          }
        double& dst = c[static_cast<std::size_t>((g.sum_batches ? 0 : out * g.stride_c) +
                                                 static_cast<std::ptrdiff_t>(i) * g.ldc + j)];
        dst = g.accumulate ? dst + acc : acc;
      }
  return c;
}

TEST_CASE_TEMPLATE("primitives: gemm — transposes, leading dimensions, batches, sums over batches, accumulation",
                   Backend, TINYATTN_TEST_BACKENDS) {
  using P = Primitives<Backend>;
  struct Case {
    index_t m, n, k, batch;
  };
  for (const Case& s :
       {Case{1, 1, 1, 1}, Case{7, 5, 3, 1}, Case{65, 17, 33, 3}, Case{130, 9, 200, 2}, Case{3, 4, 0, 2}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (bool accumulate : {false, true})
          for (bool sum : {false, true}) {
            INFO("m " << s.m << " n " << s.n << " k " << s.k << " batch " << s.batch << " trans " << ta << tb
                      << " accumulate " << accumulate << " sum " << sum);
            const index_t lda = (ta ? s.m : s.k) + 2, ldb = (tb ? s.k : s.n) + 1, ldc = s.n + 3;
            const std::ptrdiff_t sa = static_cast<std::ptrdiff_t>(ta ? s.k : s.m) * lda + 5,
                                 sb = static_cast<std::ptrdiff_t>(tb ? s.n : s.k) * ldb + 2,
                                 sc = static_cast<std::ptrdiff_t>(s.m) * ldc + 1;
            const std::vector<double> a = random_values(static_cast<std::size_t>(sa * s.batch + 8), 4),
                                      b = random_values(static_cast<std::size_t>(sb * s.batch + 8), 5),
                                      c0 = random_values(static_cast<std::size_t>(sc * s.batch + 8), 6);
            auto da = on_backend<Backend>(a), db = on_backend<Backend>(b), dc = on_backend<Backend>(c0);
            GemmArgs<double> g;
            g.m = s.m, g.n = s.n, g.k = s.k, g.batch = s.batch, g.accumulate = accumulate, g.sum_batches = sum;
            g.a = a.data(), g.lda = lda, g.trans_a = ta, g.stride_a = sa;
            g.b = b.data(), g.ldb = ldb, g.trans_b = tb, g.stride_b = sb;
            g.ldc = ldc, g.stride_c = sc;
            const std::vector<double> expected = naive_gemm(g, c0);
            g.a = P::data(da), g.b = P::data(db), g.c = P::data(dc);
            P::gemm(g);
            TINYATTN_CHECK_CLOSE(to_host<Backend>(dc), expected, 1e-12, 1e-12, "gemm");
          }
}

// One gather_sum_rows call against a double loop over the same values. Float rows of whole vectors
// take the CPU's vector path (one, several or uneven groups of accumulators, with rows at any offset);
// the other widths and double take the scalar loops.
template <class Backend, class Scalar>
void check_gather_sum_rows(index_t width, bool items, bool weights, bool accumulate, bool out_rows) {
  using P = Primitives<Backend>;
  INFO(sizeof(Scalar) * 8 << "-bit width " << width << " items " << items << " weights " << weights << " accumulate "
                          << accumulate << " out rows " << out_rows);
  const index_t segments = 9, src_rows = 23;
  const std::vector<index_t> begin{0, 3, 3, 8, 9, 15, 15, 20, 27, 31};  // segment 1 and 5 empty
  const index_t entries = begin.back();
  std::vector<index_t> entry_item(static_cast<std::size_t>(entries)), entry_slot(static_cast<std::size_t>(entries));
  for (index_t e = 0; e < entries; ++e) {
    entry_item[static_cast<std::size_t>(e)] = (7 * e + 3) % src_rows;
    entry_slot[static_cast<std::size_t>(e)] = (5 * e + 1) % 13;
  }
  const std::vector<index_t> segment_out{4, 0, 8, 2, 6, 1, 3, 7, 5};
  const index_t src_ld = width + 2;
  const auto values = [](std::size_t n, std::uint64_t seed) {
    const std::vector<double> v = random_values(n, seed);
    return std::vector<Scalar>(v.begin(), v.end());
  };
  const std::vector<Scalar> src =
                                values(static_cast<std::size_t>(src_rows) * src_ld + (items ? 0 : entries * src_ld), 7),
                            weight = values(13, 8), out0 = values(static_cast<std::size_t>(segments) * width, 9);
  std::vector<double> expected(out0.begin(), out0.end());
  for (index_t s = 0; s < segments; ++s) {
    const index_t row = out_rows ? segment_out[static_cast<std::size_t>(s)] : s;
    for (index_t c = 0; c < width; ++c) {
      double acc = accumulate ? static_cast<double>(out0[static_cast<std::size_t>(row) * width + c]) : 0.0;
      for (index_t e = begin[static_cast<std::size_t>(s)]; e < begin[static_cast<std::size_t>(s) + 1]; ++e) {
        const index_t item = items ? entry_item[static_cast<std::size_t>(e)] : e;
        const double w = weights ? weight[static_cast<std::size_t>(entry_slot[static_cast<std::size_t>(e)])] : 1.0;
        acc += w * src[static_cast<std::size_t>(item) * src_ld + c];
      }
      expected[static_cast<std::size_t>(row) * width + c] = acc;
    }
  }
  auto d_begin = on_backend<Backend>(begin), d_item = on_backend<Backend>(entry_item),
       d_slot = on_backend<Backend>(entry_slot), d_out_rows = on_backend<Backend>(segment_out);
  auto d_src = on_backend<Backend>(src), d_weight = on_backend<Backend>(weight), d_out = on_backend<Backend>(out0);
  GatherSumArgs<Scalar> g;
  g.segments = segments, g.width = width, g.begin = P::data(d_begin);
  g.entry_item = items ? P::data(d_item) : nullptr;
  g.entry_slot = P::data(d_slot);
  g.weight = weights ? P::data(d_weight) : nullptr;
  g.src = P::data(d_src), g.src_ld = src_ld, g.out = P::data(d_out);
  g.segment_out = out_rows ? P::data(d_out_rows) : nullptr;
  g.accumulate = accumulate;
  P::gather_sum_rows(g);
  const double tolerance = std::is_same_v<Scalar, float> ? 1e-5 : 1e-12;
  TINYATTN_CHECK_CLOSE(to_host<Backend>(d_out), expected, tolerance, tolerance, "gather_sum_rows");
}

TEST_CASE_TEMPLATE("primitives: gather_sum_rows — items, weights, output rows, accumulation, every width, both scalars",
                   Backend, TINYATTN_TEST_BACKENDS) {
  for (index_t width : {1, 3, 8, 13, 16, 48, 130, 144, 200, 512})
    for (bool items : {false, true})
      for (bool weights : {false, true})
        for (bool accumulate : {false, true})
          for (bool out_rows : {false, true}) {
            check_gather_sum_rows<Backend, double>(width, items, weights, accumulate, out_rows);
            check_gather_sum_rows<Backend, float>(width, items, weights, accumulate, out_rows);
          }
}

TEST_CASE_TEMPLATE("primitives: sum_metrics adds losses and hits in double and checks finiteness", Backend,
                   TINYATTN_TEST_BACKENDS) {
  using P = Primitives<Backend>;
  const index_t n = 1001;
  std::vector<float> loss(static_cast<std::size_t>(n));
  std::vector<index_t> correct(static_cast<std::size_t>(n));
  double expected_loss = 0;
  std::int64_t expected_correct = 0;
  for (index_t i = 0; i < n; ++i) {
    loss[static_cast<std::size_t>(i)] = 0.001f * static_cast<float>(i % 97);
    correct[static_cast<std::size_t>(i)] = i % 3 == 0;
    expected_loss += loss[static_cast<std::size_t>(i)];
    expected_correct += correct[static_cast<std::size_t>(i)];
  }
  auto d_loss = on_backend<Backend>(loss);
  auto d_correct = on_backend<Backend>(correct);
  std::vector<float> check(777, 1.0f);
  auto d_check = on_backend<Backend>(check);
  BatchTotals t = P::sum_metrics(P::data(d_loss), P::data(d_correct), n, P::data(d_check), check.size());
  CHECK(t.loss_sum == doctest::Approx(expected_loss).epsilon(1e-12));
  CHECK(t.correct == expected_correct);
  CHECK(t.finite);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    check[600] = bad;
    d_check = on_backend<Backend>(check);
    CHECK_FALSE(P::sum_metrics(P::data(d_loss), P::data(d_correct), n, P::data(d_check), check.size()).finite);
  }
  CHECK(P::sum_metrics(P::data(d_loss), P::data(d_correct), 0).correct == 0);
}

}  // namespace
}  // namespace tinyattn::test
