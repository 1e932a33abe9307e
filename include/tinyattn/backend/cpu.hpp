// tinyattn/backend/cpu.hpp — the CPU backend: Eigen 3.4 matrix products over flat buffers, OpenMP
// threads for everything else.
//
// Determinism: work is split into pieces whose boundaries depend only on the problem size, never on
// the thread count, and every output element is produced by exactly one piece in a fixed order. So a
// run gives bit-identical results with 1, 2 or 64 threads.
#pragma once

#include <algorithm>
#include <utility>
#include <cstring>
#include <vector>

#include <Eigen/Core>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "tinyattn/backend/threads.hpp"
#include "tinyattn/backend/primitives.hpp"
#include "tinyattn/core/math.hpp"
#include "tinyattn/backend/cpu_row_ops.hpp"

namespace tinyattn {

template <>
struct Primitives<backend::cpu> {
  template <class T>
  using buffer = std::vector<T, Eigen::aligned_allocator<T>>;
  using row_ops = CpuRowOps;

  static constexpr const char* name() { return "cpu"; }

  // ---- storage -------------------------------------------------------------------------------
  template <class T>
  static T* data(buffer<T>& b) {
    return b.data();
  }
  template <class T>
  static const T* data(const buffer<T>& b) {
    return b.data();
  }
  template <class T>
  static void allocate(buffer<T>& b, std::size_t n) {
    b.assign(n, T{});
  }
  template <class T>
  static void upload(buffer<T>& b, const T* host, std::size_t n) {
    b.assign(host, host + n);
  }
  template <class T>
  static void download(const buffer<T>& b, T* host) {
    std::copy(b.begin(), b.end(), host);
  }
  template <class T>
  static void copy(const T* from, T* to, std::size_t n) {
    std::memmove(to, from, n * sizeof(T));
  }
  // n values from host memory into backend memory that is already allocated (no allocation).
  template <class T>
  static void copy_from_host(const T* host, T* to, std::size_t n) {
    std::copy(host, host + n, to);
  }
  // n values from backend memory into host memory.
  template <class T>
  static void copy_to_host(const T* from, T* host, std::size_t n) {
    std::copy(from, from + n, host);
  }
  template <class T>
  static void fill(T* p, std::size_t n, T value) {
    std::fill(p, p + n, value);
  }

  // Training batches are processed in tiles of this many samples, each tile a task (kTileTasks): its
  // per-sample gradient rows (tile x 144 floats for the reference shape, 590 KB) are written and
  // scattered by one core and stay in its L2. Measured on the 2-vCPU machine (bench/), two threads:
  // 1024 -> 1.89 ms/epoch, 512 -> 1.98, 2048 -> 1.97, 4096 -> 2.08; one thread: 1024 best as well.
  static constexpr index_t kSampleTile = 1024;
  static constexpr index_t kScatterChunk = 256;  // entries a scatter task sums (ops/index_add.hpp)
  // The attention of the last query (a few table lookups and a softmax of T per head) vectorizes
  // across samples, 16 per vector, with gathers; inside each sample's kernel it is a chain of scalar
  // steps in front of the row work. Measured on the reference shape: about 1/3 of an evaluation pass.
  static constexpr bool kAttendFirst = true;
  // Mix the logit table rebased on the query row when it pays (model/row_tables.hpp): 7 rows instead
  // of 9 per sample on the reference shape, a smaller table to keep in cache.
  static constexpr bool kRebaseLogits = true;
  // Tiles as tasks: a tile's per-sample gradient rows are then written and scattered by the same core
  // (L2), never read by the other one. Measured on the 2-vCPU machine, in the periods when its two
  // vCPUs share data slowly, the training pass went from 2.1 ms (no faster than one thread) to 1.4.
  static constexpr bool kTileTasks = true;

  // ---- parallel loops --------------------------------------------------------------------------
  // Below this many iterations a loop runs on the calling thread: waking the team costs more.
  static constexpr index_t kSerialBelow = 64;
  // Products and scatters smaller than this many multiply-adds (about 50 us on one core) run on the
  // calling thread. A parallel region costs 1-2 us when the other threads are spinning, but on a
  // virtual machine whose host deschedules spinning vCPUs (pause-loop exiting) each one costs ~40 us,
  // and an epoch of the reference experiment would otherwise open a dozen regions around small work.
  static constexpr long kParallelWork = 1L << 20;

  template <class F>
  static void for_each(index_t n, const F& f) {
#pragma omp parallel for schedule(static) if (n >= kSerialBelow)
    for (index_t i = 0; i < n; ++i) f(i);
  }

  // Each thread works on its own copy of f: its fields are then loop-invariant values, which the
  // vectorizer needs (read through a pointer, they would be reloaded, as a store might change them).
  template <class F>
  static void for_each_simd(index_t n, const F& f) {
#pragma omp parallel if (n >= kSerialBelow)
    {
      const F local = f;
#pragma omp for simd schedule(simd : static)
      for (index_t i = 0; i < n; ++i) local(i);
    }
  }

  static index_t max_workers() { return cpu_threads(); }  // the user's setting (backend/threads.hpp)
  // Tasks in parallel, statically dealt (task i to thread i mod threads), each on one thread: the
  // primitives a task calls see a thread count of 1 (an ICV of the region's implicit task) and run
  // on that thread.
  template <class F>
  static void for_each_task(index_t n, index_t workers, const F& f) {
    const int threads = static_cast<int>(std::max<index_t>(1, std::min<index_t>(workers, max_workers())));
#pragma omp parallel num_threads(threads) if (n > 1 && threads > 1)
    {
#if defined(_OPENMP)
      omp_set_num_threads(1);
      const index_t worker = omp_get_thread_num();
#else
      const index_t worker = 0;
#endif
#pragma omp for schedule(static, 1)
      for (index_t task = 0; task < n; ++task) f(task, worker);
    }
  }

  // A team of one per item: the vectorized row operations of CpuRowOps do the rest.
  template <class F>
  static void for_each_team(index_t n, const F& f) {
#pragma omp parallel for schedule(static) if (n >= kSerialBelow)
    for (index_t i = 0; i < n; ++i) f(i, Team{0, 1});
  }

  template <class F>
  static void for_each_row(index_t rows, index_t cols, const F& f) {
#pragma omp parallel for schedule(dynamic, 4) if (rows >= 8 && static_cast <long>(rows) * cols >= kParallelWork / 4)
    for (index_t r = 0; r < rows; ++r) f(r, index_t{0}, cols);
  }

  // ---- matrix products ---------------------------------------------------------------------------
  // Output rows are cut into fixed blocks of kGemmRowBlock; each (batch, block) is one product
  // computed by one thread, so the summation order does not depend on the thread count. Each block
  // calls Eigen's matrix-matrix kernel itself (product_block) rather than through a product
  // expression: an expression also compiles Eigen's matrix-vector and coefficient-wise products and
  // its own threading for every transpose combination, which cost each translation unit several
  // seconds of compile time for products this backend never wants (one thread per block, always the
  // blocked kernel, whatever the sizes).
  static constexpr index_t kGemmRowBlock = 64;

  template <class T>
  static void gemm(const GemmArgs<T>& g) {
    if (g.m == 0 || g.n == 0) return;
    const index_t blocks = (g.m + kGemmRowBlock - 1) / kGemmRowBlock;
    const index_t outputs = g.sum_batches ? 1 : g.batch;
    const index_t tasks = outputs * blocks;
    const bool threads = tasks > 1 && static_cast<long>(g.m) * g.n * g.k * g.batch >= kParallelWork;
#pragma omp parallel for schedule(dynamic, 1) if (threads)
    for (index_t task = 0; task < tasks; ++task) {
      const index_t out = task / blocks, block = task % blocks;
      const index_t row0 = block * kGemmRowBlock, rows = std::min(kGemmRowBlock, g.m - row0);
      const index_t first = g.sum_batches ? 0 : out, last = g.sum_batches ? g.batch : out + 1;
      T* c = g.c + (g.sum_batches ? 0 : out * g.stride_c) + static_cast<std::ptrdiff_t>(row0) * g.ldc;
      if (!g.accumulate)  // Eigen's kernel adds to c
        for (index_t r = 0; r < rows; ++r) std::fill_n(c + static_cast<std::ptrdiff_t>(r) * g.ldc, g.n, T(0));
      if (g.k == 0) continue;
      for (index_t bi = first; bi < last; ++bi) {
        const T* a = g.a + bi * g.stride_a;
        // The block's rows of op(A): rows of A, or columns of A stored (k, m) when transposed.
        const T* a_rows = g.trans_a ? a + row0 : a + static_cast<std::ptrdiff_t>(row0) * g.lda;
        product_block(c, g.ldc, a_rows, g.lda, g.trans_a, g.b + bi * g.stride_b, g.ldb, g.trans_b, rows, g.n, g.k);
      }
    }
  }

  // One segment per task. Float rows of whole vectors (simd::kLanes columns each) are summed in
  // vector registers, one load and one FMA per vector of an entry, at most simd::kAccumulators
  // vectors of columns at a time (each such group walks the entries again; every column's sum keeps
  // the entries' order). Width 1 is a scalar sum, vectorized (a fixed lane order) when all entries
  // share one source value, as the score-table gradients do (the weights are then summed first), or
  // when the entries are a contiguous run.
  template <class T>
  static void gather_sum_rows(const GatherSumArgs<T>& g) {
#if TINYATTN_HOST_SIMD
    if constexpr (std::is_same_v<T, float>) {
      if (g.width % simd::kLanes == 0 && g.width > 0) {
        gather_sum_vectors(g);
        return;
      }
    }
#endif
#pragma omp parallel for schedule(dynamic, 8) if (g.segments >= 16 && work(g) >= kParallelWork)
    for (index_t s = 0; s < g.segments; ++s) {
      T* out = g.out + static_cast<std::ptrdiff_t>(g.segment_out ? g.segment_out[s] : s) * g.width;
      if (g.width == 1) {
        const index_t first = g.begin[s], last = g.begin[s + 1];
        T acc = 0;
        if (g.src_ld == 0 && g.weight) {  // one source value for all: sum the weights (a gather per 16)
          TINYATTN_SIMD_SUM(acc)
          for (index_t e = first; e < last; ++e) acc += g.weight[g.entry_slot[e]];
          acc *= g.src[0];
        } else if (!g.entry_item && !g.weight && g.src_ld == 1) {  // a contiguous run (chunk partials)
          TINYATTN_SIMD_SUM(acc)
          for (index_t e = first; e < last; ++e) acc += g.src[e];
        } else {
          for (index_t e = first; e < last; ++e) {
            const index_t item = g.entry_item ? g.entry_item[e] : e;
            acc += (g.weight ? g.weight[g.entry_slot[e]] : T(1)) * g.src[static_cast<std::ptrdiff_t>(item) * g.src_ld];
          }
        }
        out[0] = g.accumulate ? out[0] + acc : acc;
        continue;
      }
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

  // Multiply-adds of a gather-sum: entries times width (the segments' entry lists are contiguous).
  template <class T>
  static long work(const GatherSumArgs<T>& g) {
    return static_cast<long>(g.begin[g.segments] - g.begin[0]) * std::max<index_t>(g.width, 1);
  }

  // ---- reductions ----------------------------------------------------------------------------------
  template <class T>
  static BatchTotals sum_metrics(const T* loss, const index_t* correct, index_t n, const T* check = nullptr,
                                 std::size_t check_count = 0) {
    BatchTotals totals;
    for (index_t i = 0; i < n; ++i) {  // sequential, in double: cheap next to the forward pass
      totals.loss_sum += static_cast<double>(loss[i]);
      totals.correct += correct[i];
    }
    for (std::size_t i = 0; i < check_count; ++i) totals.finite &= math::is_finite(check[i]);
    return totals;
  }

 private:
#if TINYATTN_HOST_SIMD
  // The columns in groups of equal size (as far as they divide), each no wider than the registers.
  static void gather_sum_vectors(const GatherSumArgs<float>& g) {
    const index_t vectors = g.width / simd::kLanes;
    const index_t groups = (vectors + simd::kAccumulators - 1) / simd::kAccumulators;
    const index_t per_group = (vectors + groups - 1) / groups;
#pragma omp parallel for schedule(dynamic, 8) if (g.segments >= 16 && work(g) >= kParallelWork)
    for (index_t s = 0; s < g.segments; ++s)
      for (index_t first = 0; first < vectors; first += per_group)
        dispatch_group(g, s, first, std::min(per_group, vectors - first),
                       std::make_integer_sequence<int, simd::kAccumulators>{});
  }
  template <int... B>
  static void dispatch_group(const GatherSumArgs<float>& g, index_t s, index_t first, index_t count,
                             std::integer_sequence<int, B...>) {
    ((count == B + 1 ? gather_sum_group<B + 1>(g, s, first) : void()), ...);
  }
  // Segment s, vectors [first, first + Vectors) of its columns.
  template <int Vectors>
  static void gather_sum_group(const GatherSumArgs<float>& g, index_t s, index_t first) {
    constexpr index_t L = simd::kLanes;
    const index_t column = first * L;
    float* out = g.out + static_cast<std::ptrdiff_t>(g.segment_out ? g.segment_out[s] : s) * g.width + column;
    simd::f32v acc[Vectors];
    for (int k = 0; k < Vectors; ++k) acc[k] = g.accumulate ? simd::load(out + L * k) : simd::splat(0);
    for (index_t e = g.begin[s]; e < g.begin[s + 1]; ++e) {
      const index_t item = g.entry_item ? g.entry_item[e] : e;
      const float w = g.weight ? g.weight[g.entry_slot[e]] : 1.0f;
      const float* src = g.src + static_cast<std::ptrdiff_t>(item) * g.src_ld + column;
      for (int k = 0; k < Vectors; ++k) acc[k] += w * simd::load(src + L * k);
    }
    for (int k = 0; k < Vectors; ++k) simd::store(out + L * k, acc[k]);
  }
#endif

  // Eigen's block sizes for a (rows, n, k) product with a row-major result (the same as its own
  // gemm_blocking_space: the same bits), packing into this thread's workspace instead of buffers Eigen
  // would make per call, on the heap for panels over its 128 KB stack limit (grokking's). The
  // workspace grows to the largest product the thread has run; after that no product allocates.
  template <class T>
  class GemmPanels : public Eigen::internal::level3_blocking<T, T> {
   public:
    GemmPanels(index_t rows, index_t n, index_t k) {
      // Eigen runs a product with a row-major result transposed: its rows (mc) are the n columns.
      this->m_mc = n, this->m_nc = rows, this->m_kc = k;
      Eigen::internal::computeProductBlockingSizes<T, T, 1>(this->m_kc, this->m_mc, this->m_nc, Eigen::Index{1});
      constexpr std::size_t kAlign = 64 / sizeof(T);  // B's panel on a 64-byte boundary too
      const std::size_t a = (static_cast<std::size_t>(this->m_mc * this->m_kc) + kAlign - 1) / kAlign * kAlign;
      const std::size_t b = static_cast<std::size_t>(this->m_kc * this->m_nc);
      thread_local buffer<T> workspace;
      if (workspace.size() < a + b) workspace.resize(a + b);
      this->m_blockA = workspace.data();
      this->m_blockB = workspace.data() + a;
    }
  };

  // c (rows, n; row-major, ldc) += op(A) (rows, k) op(B) (k, n), with A stored row-major (rows, k) or,
  // transposed, (k, rows) (a column-major view), and B likewise (k, n) or (n, k). On this thread.
  template <class T>
  static void product_block(T* c, index_t ldc, const T* a, index_t lda, bool trans_a, const T* b, index_t ldb,
                            bool trans_b, index_t rows, index_t n, index_t k) {
    constexpr int kRow = Eigen::RowMajor, kCol = Eigen::ColMajor;
    if (!trans_a)
      trans_b ? product_block<kRow, kCol>(c, ldc, a, lda, b, ldb, rows, n, k)
              : product_block<kRow, kRow>(c, ldc, a, lda, b, ldb, rows, n, k);
    else
      trans_b ? product_block<kCol, kCol>(c, ldc, a, lda, b, ldb, rows, n, k)
              : product_block<kCol, kRow>(c, ldc, a, lda, b, ldb, rows, n, k);
  }
  template <int AOrder, int BOrder, class T>
  static void product_block(T* c, index_t ldc, const T* a, index_t lda, const T* b, index_t ldb, index_t rows,
                            index_t n, index_t k) {
    GemmPanels<T> panels(rows, n, k);
    Eigen::internal::general_matrix_matrix_product<Eigen::Index, T, AOrder, false, T, BOrder, false, Eigen::RowMajor,
                                                   1>::run(rows, n, k, a, lda, b, ldb, c, 1, ldc, T(1), panels,
                                                           nullptr);
  }
};

}  // namespace tinyattn
