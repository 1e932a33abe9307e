// tinyattn/backend/primitives.hpp — backend policy tags and the primitive interface they plug into.
//
// A backend is an empty tag type. Everything the model does on a backend goes through
// `Primitives<Backend>`, a handful of operations every backend implements:
//
//   buffer<T>                          owning storage in the backend's memory
//   upload / download / fill / copy    moving data (host <-> backend, backend <-> backend)
//   copy_from_host / copy_to_host      host <-> backend into memory already allocated (no allocation)
//   for_each(n, f)                     f(i) for i in [0, n), in parallel; f is TINYATTN_HD
//   for_each_simd(n, f)                as for_each, for small branch-free f: the CPU runs 16 items in
//                                      the lanes of a vector (OpenMP simd), other backends as for_each
//   for_each_team(n, f)                f(i, team) for i in [0, n): a team per item, of row_ops::team_size
//                                      members (1 on a CPU, a warp on CUDA); see ops/row_ops.hpp
//   for_each_task(n, workers, f)       f(task, worker) for task in [0, n): coarse independent tasks that
//                                      call primitives themselves; a CPU runs up to `workers` of them
//                                      at once, one thread each (worker < workers names its scratch)
//   for_each_row(rows, cols, f)        f(row, col_begin, col_end) covering every (row, col); the
//                                      backend picks the column tiling (whole rows on a CPU for
//                                      SIMD, one column per thread on a GPU for coalescing)
//   gemm(GemmArgs)                     strided-batched row-major matrix products
//   gather_sum_rows(GatherSumArgs)     out[s] = sum of weighted src rows listed by segment s (the
//                                      deterministic building block of scatter-adds)
//   sum_metrics(loss, correct, n, check, m)   deterministic sum of per-sample losses and hits, and
//                                      whether check[0, m) is all finite (one wait for the device)
// and a few constants that tune the model's schedule to the backend, not its math:
//   kSampleTile                        samples per tile of a training pass
//   kScatterChunk                      entries one scatter task sums
//   kAttendFirst                       true: attention weights of a whole pass in one vectorized
//                                      loop first (AttendLastQuery); false: inside each sample's kernel
//   kRebaseLogits                      mix the logit table rebased on the query row when it pays
//                                      (model/row_tables.hpp, rebase_logits)
//   kTileTasks                         training tiles as tasks (kernel and scatter of a tile on one
//                                      thread, into the tile's own partial table) rather than one
//                                      tile after another with every thread on each step
//   max_workers()                      workers for_each_task can use at most
//
// The model's math (tinyattn/model/) is written once against this interface; a new backend is a new
// tag plus a specialization of Primitives. Every result is deterministic: a rerun on the same
// backend gives bit-identical numbers (no atomics; reductions in a fixed order).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "tinyattn/core/config.hpp"

namespace tinyattn {

namespace backend {
// The CPU: Eigen 3.4 for matrix products, OpenMP threads for the rest (tinyattn/backend/cpu.hpp).
struct cpu {};
// Thrust: CUDA when compiled by nvcc, Thrust's OpenMP device system when compiled by a host
// compiler (tinyattn/backend/thrust.hpp).
struct thrust {};
}  // namespace backend

template <class B>
struct is_backend : std::false_type {};
template <>
struct is_backend<backend::cpu> : std::true_type {};
template <>
struct is_backend<backend::thrust> : std::true_type {};
template <class B>
inline constexpr bool is_backend_v = is_backend<B>::value;

// C (m x n) = op(A) (m x k) * op(B) (k x n), all row-major, for `batch` independent products at the
// given element strides. op(A)(i, l) is a[i * lda + l], or a[l * lda + i] when trans_a.
// accumulate: C += product instead of C = product. sum_batches: one output, C = sum over the batch
// (stride_c ignored) — accumulated in batch order.
template <class T>
struct GemmArgs {
  index_t m = 0, n = 0, k = 0;
  const T* a = nullptr;
  index_t lda = 0;
  bool trans_a = false;
  std::ptrdiff_t stride_a = 0;
  const T* b = nullptr;
  index_t ldb = 0;
  bool trans_b = false;
  std::ptrdiff_t stride_b = 0;
  T* c = nullptr;
  index_t ldc = 0;
  std::ptrdiff_t stride_c = 0;
  index_t batch = 1;
  bool accumulate = false;
  bool sum_batches = false;
};

// For every segment s in [0, segments), columns [0, width):
//   out[s, c] = (accumulate ? out[s, c] : 0) + sum over e in [begin[s], begin[s+1]) of w(e) * src[item(e), c]
// with item(e) = entry_item ? entry_item[e] : e and w(e) = weight ? weight[entry_slot[e]] : 1, summed in
// increasing e. Rows: src row i starts at src + i * src_ld, out row s at out + s * width.
template <class T>
struct GatherSumArgs {
  index_t segments = 0, width = 0;
  const index_t* begin = nullptr;       // (segments + 1)
  const index_t* entry_item = nullptr;  // (entries) or null
  const index_t* entry_slot = nullptr;  // (entries), used with weight
  const T* weight = nullptr;            // indexed by entry_slot, or null for 1
  const T* src = nullptr;
  index_t src_ld = 0;
  T* out = nullptr;
  const index_t* segment_out = nullptr;  // (segments): out row of segment s, or null for row s
  bool accumulate = false;
};

struct BatchTotals {
  double loss_sum = 0.0;     // sum of the scored positions' cross-entropy losses
  std::int64_t correct = 0;  // scored positions whose argmax equals the target
  bool finite = true;        // every value of the checked array (the gradients) is finite
  std::int64_t scored = 0;   // scored positions (set by the engine that knows them; not by sum_metrics)
};

// The primary template is never instantiated: a tag without a specialization is a compile error
// that names the problem instead of a cascade of missing members.
template <class Backend>
struct Primitives {
  static_assert(dependent_false<Backend>,
                "tinyattn: no Primitives<Backend> for this backend. Use tinyattn::backend::cpu "
                "(include tinyattn/backend/cpu.hpp) or tinyattn::backend::thrust (include "
                "tinyattn/backend/thrust.hpp).");
};

}  // namespace tinyattn
