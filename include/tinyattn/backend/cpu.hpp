// tinyattn/backend/cpu.hpp — the CPU backend: Eigen 3.4 matrix products over flat buffers, OpenMP
// threads for everything else.
//
// Determinism: work is split into pieces whose boundaries depend only on the problem size, never on
// the thread count, and every output element is produced by exactly one piece in a fixed order. So a
// run gives bit-identical results with 1, 2 or 64 threads.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include <Eigen/Core>

#include "tinyattn/backend/primitives.hpp"
#include "tinyattn/core/math.hpp"

namespace tinyattn {

template <>
struct Primitives<backend::cpu> {
  template <class T>
  using buffer = std::vector<T, Eigen::aligned_allocator<T>>;

  static constexpr const char* name() { return "cpu"; }

  // ---- storage -------------------------------------------------------------------------------
  template <class T>
  static T* data(buffer<T>& b) { return b.data(); }
  template <class T>
  static const T* data(const buffer<T>& b) { return b.data(); }
  template <class T>
  static void allocate(buffer<T>& b, std::size_t n) { b.assign(n, T{}); }
  template <class T>
  static void upload(buffer<T>& b, const T* host, std::size_t n) { b.assign(host, host + n); }
  template <class T>
  static void download(const buffer<T>& b, T* host) { std::copy(b.begin(), b.end(), host); }
  template <class T>
  static void copy(const T* from, T* to, std::size_t n) { std::memmove(to, from, n * sizeof(T)); }
  template <class T>
  static void fill(T* p, std::size_t n, T value) { std::fill(p, p + n, value); }

  // ---- parallel loops --------------------------------------------------------------------------
  // Below this many iterations a loop runs on the calling thread: waking the team costs more.
  static constexpr index_t kSerialBelow = 64;

  template <class F>
  static void for_each(index_t n, const F& f) {
#pragma omp parallel for schedule(static) if (n >= kSerialBelow)
    for (index_t i = 0; i < n; ++i) f(i);
  }

  template <class F>
  static void for_each_row(index_t rows, index_t cols, const F& f) {
#pragma omp parallel for schedule(dynamic, 4) if (rows >= 8)
    for (index_t r = 0; r < rows; ++r) f(r, index_t{0}, cols);
  }

  // ---- matrix products ---------------------------------------------------------------------------
  // Output rows are cut into fixed blocks of kGemmRowBlock; each (batch, block) is one Eigen product
  // computed by one thread, so the summation order does not depend on the thread count. Eigen does
  // not start threads of its own inside an OpenMP parallel region.
  static constexpr index_t kGemmRowBlock = 64;

  template <class T>
  static void gemm(const GemmArgs<T>& g) {
    using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using ConstMap = Eigen::Map<const Matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
    using Map = Eigen::Map<Matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
    if (g.m == 0 || g.n == 0) return;
    const index_t blocks = (g.m + kGemmRowBlock - 1) / kGemmRowBlock;
    const index_t outputs = g.sum_batches ? 1 : g.batch;
    const index_t tasks = outputs * blocks;
#pragma omp parallel for schedule(dynamic, 1) if (tasks > 1 && static_cast<long>(g.m) * g.n * g.k * g.batch > 32768)
    for (index_t task = 0; task < tasks; ++task) {
      const index_t out = task / blocks, block = task % blocks;
      const index_t row0 = block * kGemmRowBlock, rows = std::min(kGemmRowBlock, g.m - row0);
      const index_t first = g.sum_batches ? 0 : out, last = g.sum_batches ? g.batch : out + 1;
      Map c(g.c + (g.sum_batches ? 0 : out * g.stride_c) + static_cast<std::ptrdiff_t>(row0) * g.ldc, rows, g.n,
            Eigen::OuterStride<>(g.ldc));
      for (index_t bi = first; bi < last; ++bi) {
        const bool add = g.accumulate || bi > first;
        const T* a = g.a + bi * g.stride_a;
        const T* b = g.b + bi * g.stride_b;
        if (g.k == 0) {
          if (!add) c.setZero();
          continue;
        }
        const ConstMap bm(b, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, Eigen::OuterStride<>(g.ldb));
        if (!g.trans_a) {
          const ConstMap am(a + static_cast<std::ptrdiff_t>(row0) * g.lda, rows, g.k, Eigen::OuterStride<>(g.lda));
          product(c, am, bm, g.trans_b, add);
        } else {
          const ConstMap at(a, g.k, g.m, Eigen::OuterStride<>(g.lda));
          product(c, at.middleCols(row0, rows).transpose(), bm, g.trans_b, add);
        }
      }
    }
  }

  // One segment per task; each entry adds a whole weighted src row into the segment's output row,
  // which stays in L1 while the src rows stream through.
  template <class T>
  static void gather_sum_rows(const GatherSumArgs<T>& g) {
#pragma omp parallel for schedule(dynamic, 8) if (g.segments >= 16)
    for (index_t s = 0; s < g.segments; ++s) {
      T* out = g.out + static_cast<std::ptrdiff_t>(s) * g.width;
      if (!g.accumulate) std::fill(out, out + g.width, T(0));
      for (index_t e = g.begin[s]; e < g.begin[s + 1]; ++e) {
        const index_t item = g.entry_item ? g.entry_item[e] : e;
        const T w = g.weight ? g.weight[g.entry_slot[e]] : T(1);
        const T* src = g.src + static_cast<std::ptrdiff_t>(item) * g.src_ld;
        TINYATTN_SIMD
        for (index_t c = 0; c < g.width; ++c) out[c] += w * src[c];
      }
    }
  }

  // ---- reductions ----------------------------------------------------------------------------------
  template <class T>
  static BatchTotals sum_metrics(const T* loss, const index_t* correct, index_t n) {
    BatchTotals totals;
    for (index_t i = 0; i < n; ++i) {  // sequential, in double: cheap next to the forward pass
      totals.loss_sum += static_cast<double>(loss[i]);
      totals.correct += correct[i];
    }
    return totals;
  }

  template <class T>
  static bool all_finite(const T* x, std::size_t n) {
    bool ok = true;
    for (std::size_t i = 0; i < n; ++i) ok &= math::is_finite(x[i]);
    return ok;
  }

 private:
  template <class C, class A, class B>
  static void product(C& c, const A& a, const B& b, bool trans_b, bool add) {
    if (trans_b) {
      if (add) c.noalias() += a * b.transpose();
      else c.noalias() = a * b.transpose();
    } else {
      if (add) c.noalias() += a * b;
      else c.noalias() = a * b;
    }
  }
};

}  // namespace tinyattn
