// tinyattn/backend/thrust.hpp — the Thrust backend: the network on Thrust's device system.
//
//   nvcc      -> CUDA (the toolkit's CCCL): the network trains on an NVIDIA GPU
//   g++/clang -> Thrust's OpenMP device system (Debian's libthrust-dev): the very same code runs on
//                the CPU, which is how CI tests this backend without a GPU
//
// Everything stays on the device between epochs: parameters, gradients, AdamW moments, tables and
// per-sample buffers are device_vectors; the host sees only what it asks for (weights to save,
// attention maps to plot) and three numbers per epoch (loss and hits of each pass, the finite check).
// Kernels are thrust::for_each over counting iterators calling the library's TINYATTN_HD functors:
// one thread per sample, per output element of a product, per (segment, column) of a scatter. On CUDA
// they are launched without a synchronization each (par_nosync); only reductions wait.
#pragma once

#include <cstdint>
#include <string>
#include <limits>
#include <vector>

#include <thrust/copy.h>
#include <thrust/device_ptr.h>
#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

#include "tinyattn/backend/primitives.hpp"
#include "tinyattn/core/math.hpp"
#include "tinyattn/ops/row_ops.hpp"

#if defined(__CUDACC__) && THRUST_VERSION < 200000
#error \
    "tinyattn: CUDA builds use the CUDA toolkit's CCCL (Thrust 2 or later); Debian's Thrust 1.17 is for host-compiler (OpenMP) builds"
#endif

namespace tinyattn {

namespace thrust_detail {

// Launch policy: on CUDA do not synchronize after every algorithm (Thrust >= 1.16); elsewhere the
// device system's default.
inline auto policy() {
#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
  return thrust::cuda::par_nosync;
#else
  return thrust::device;
#endif
}

template <class F>
struct Each {
  F f;
  TINYATTN_HD void operator()(index_t i) const { f(i); }
};

template <class F>
struct EachOfTeamOfOne {
  F f;
  TINYATTN_HD void operator()(index_t i) const { f(i, Team{0, 1}); }
};

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
// A warp per item: thrust::for_each does not promise which thread gets which index, and warp
// shuffles need the 32 members of a team in one warp, so this primitive launches its own kernel (on
// the default stream, ordered with Thrust's work).
constexpr index_t kTeam = 32;
template <class F>
__global__ void each_team_kernel(F f, index_t n) {
  const long long thread = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const index_t item = static_cast<index_t>(thread / kTeam), lane = static_cast<index_t>(thread % kTeam);
  if (item < n) f(item, Team{lane, kTeam});
}
#else
constexpr index_t kTeam = 1;
#endif

template <class F>
struct EachColumn {  // one (row, column) per thread: neighbouring threads read neighbouring columns
  F f;
  index_t cols;
  TINYATTN_HD void operator()(index_t i) const { f(i / cols, i % cols, i % cols + 1); }
};

// One output element of a product per team, the members striding over k (and the batch when summed):
// a warp per element for the long inner dimensions of weight gradients (k = rows of a table), which
// one thread would walk serially; a team of one (a plain thread) for short ones.
template <class T>
struct GemmElement {
  GemmArgs<T> g;
  TINYATTN_HD void operator()(index_t i, Team team) const {
    const index_t per_output = g.m * g.n;
    const index_t out = i / per_output, rest = i % per_output, r = rest / g.n, c = rest % g.n;
    const index_t first = g.sum_batches ? 0 : out, last = g.sum_batches ? g.batch : out + 1;
    T acc = 0;
    for (index_t bi = first; bi < last; ++bi) {
      const T* a = g.a + bi * g.stride_a;
      const T* b = g.b + bi * g.stride_b;
      for (index_t l = team.lane; l < g.k; l += team.size) {
        const T av =
            g.trans_a ? a[static_cast<std::ptrdiff_t>(l) * g.lda + r] : a[static_cast<std::ptrdiff_t>(r) * g.lda + l];
        const T bv =
            g.trans_b ? b[static_cast<std::ptrdiff_t>(c) * g.ldb + l] : b[static_cast<std::ptrdiff_t>(l) * g.ldb + c];
        acc += av * bv;
      }
    }
    if (team.size > 1) acc = GenericRowOps<kTeam>::team_sum(acc);
    if (team.lane != 0) return;
    T* out_c = g.c + (g.sum_batches ? 0 : out * g.stride_c) + static_cast<std::ptrdiff_t>(r) * g.ldc + c;
    *out_c = g.accumulate ? *out_c + acc : acc;
  }
};

template <class T>
struct GatherSumElement {
  GatherSumArgs<T> g;
  TINYATTN_HD void operator()(index_t i) const {
    const index_t s = i / g.width, c = i % g.width;
    T* out = g.out + static_cast<std::ptrdiff_t>(g.segment_out ? g.segment_out[s] : s) * g.width + c;
    T acc = g.accumulate ? *out : T(0);
    for (index_t e = g.begin[s]; e < g.begin[s + 1]; ++e) {
      const index_t item = g.entry_item ? g.entry_item[e] : e;
      const T w = g.weight ? g.weight[g.entry_slot[e]] : T(1);
      acc += w * g.src[static_cast<std::ptrdiff_t>(item) * g.src_ld + c];
    }
    *out = acc;
  }
};

struct Totals {
  double loss_sum;
  long long correct;
  int finite;
};

// Deterministic reductions without temporary allocations (thrust::reduce would allocate device
// scratch memory on every call): kParts threads each sum a strided share in a fixed order into a
// preallocated buffer, the host adds the parts in order.
constexpr index_t kParts = 512;

template <class T>
struct PartialTotals {
  const T* loss;
  const index_t* correct;
  index_t n;
  const T* check;
  std::size_t check_count;
  Totals* parts;
  TINYATTN_HD void operator()(index_t part) const {
    Totals t{0.0, 0, 1};
    for (index_t i = part; i < n; i += kParts) {
      t.loss_sum += static_cast<double>(loss[i]);
      t.correct += correct[i];
    }
    for (std::size_t i = static_cast<std::size_t>(part); i < check_count; i += kParts)
      t.finite &= math::is_finite(check[i]) ? 1 : 0;
    parts[part] = t;
  }
};

// Scratch for the partial results, allocated once and kept for the program's life (never freed: a
// static device_vector would be destroyed after the CUDA runtime shuts down).
template <class T>
T* scratch() {
  static thrust::device_vector<T>* buffer = new thrust::device_vector<T>(kParts);
  return thrust::raw_pointer_cast(buffer->data());
}

}  // namespace thrust_detail

template <>
struct Primitives<backend::thrust> {
  template <class T>
  using buffer = thrust::device_vector<T>;
  using row_ops = GenericRowOps<thrust_detail::kTeam>;
  // One tile = the whole batch: on a GPU fewer, larger launches win; the buffers are device memory.
  static constexpr index_t kSampleTile = std::numeric_limits<index_t>::max();
  static constexpr index_t kScatterChunk = 64;  // short serial sums, many threads
  // Each sample's kernel attends itself: one launch fewer per pass, and a GPU hides the latency.
  static constexpr bool kAttendFirst = false;
  // The rebased logit table (model/row_tables.hpp) is not used here: the CUDA path was measured and
  // tested on a GPU without it.
  static constexpr bool kRebaseLogits = false;
  // One tile (the whole batch), so there is nothing to run as tasks.
  static constexpr bool kTileTasks = false;

  static constexpr const char* name() {
#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
    return "thrust (CUDA)";
#elif THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_OMP
    return "thrust (OpenMP)";
#else
    return "thrust";
#endif
  }

  // ---- storage -------------------------------------------------------------------------------
  template <class T>
  static T* data(buffer<T>& b) {
    return thrust::raw_pointer_cast(b.data());
  }
  template <class T>
  static const T* data(const buffer<T>& b) {
    return thrust::raw_pointer_cast(b.data());
  }
  template <class T>
  static void allocate(buffer<T>& b, std::size_t n) {
    b.resize(n);
    thrust::fill(b.begin(), b.end(), T{});
  }
  template <class T>
  static void upload(buffer<T>& b, const T* host, std::size_t n) {
    // Empty copies return early: Thrust's host path hands memmove a null pointer otherwise (UB).
    if (n == 0) return b.clear();
    b.assign(host, host + n);
  }
  template <class T>
  static void download(const buffer<T>& b, T* host) {
    if (!b.empty()) thrust::copy(b.begin(), b.end(), host);
  }
  template <class T>
  static void copy(const T* from, T* to, std::size_t n) {
    if (n == 0) return;
    thrust::copy_n(thrust_detail::policy(), thrust::device_pointer_cast(from), n, thrust::device_pointer_cast(to));
  }
  template <class T>
  static void copy_from_host(const T* host, T* to, std::size_t n) {
    if (n == 0) return;
    thrust::copy_n(host, n, thrust::device_pointer_cast(to));
  }
  template <class T>
  static void copy_to_host(const T* from, T* host, std::size_t n) {
    if (n == 0) return;
    thrust::copy_n(thrust::device_pointer_cast(from), n, host);
  }
  template <class T>
  static void fill(T* p, std::size_t n, T value) {
    thrust::fill_n(thrust_detail::policy(), thrust::device_pointer_cast(p), n, value);
  }

  // ---- parallel loops ---------------------------------------------------------------------------
  template <class F>
  static void for_each(index_t n, const F& f) {
    if (n <= 0) return;
    thrust::for_each_n(thrust_detail::policy(), thrust::counting_iterator<index_t>(0), n, thrust_detail::Each<F>{f});
  }
  template <class F>
  static void for_each_simd(index_t n, const F& f) {
    for_each(n, f);
  }
  static index_t max_workers() { return 1; }
  // One after another: each task's primitives already use the whole device.
  template <class F>
  static void for_each_task(index_t n, index_t, const F& f) {
    for (index_t task = 0; task < n; ++task) f(task, index_t{0});
  }
  template <class F>
  static void for_each_team(index_t n, const F& f) {
    if (n <= 0) return;
#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
    constexpr int kThreads = 256;
    const long long threads = static_cast<long long>(n) * thrust_detail::kTeam;
    thrust_detail::each_team_kernel<<<static_cast<unsigned>((threads + kThreads - 1) / kThreads), kThreads>>>(f, n);
    const cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess)
      throw Error(std::string("tinyattn thrust backend: kernel launch failed: ") + cudaGetErrorString(status));
#else
    thrust::for_each_n(thrust_detail::policy(), thrust::counting_iterator<index_t>(0), n,
                       thrust_detail::EachOfTeamOfOne<F>{f});
#endif
  }
  template <class F>
  static void for_each_row(index_t rows, index_t cols, const F& f) {
    if (rows <= 0 || cols <= 0) return;
    thrust::for_each_n(thrust_detail::policy(), thrust::counting_iterator<index_t>(0), rows * cols,
                       thrust_detail::EachColumn<F>{f, cols});
  }

  // ---- matrix products: one output element per thread ---------------------------------------------
  template <class T>
  static void gemm(const GemmArgs<T>& g) {
    const index_t outputs = g.sum_batches ? 1 : g.batch;
    const index_t inner = g.k * (g.sum_batches ? g.batch : 1);
    if (thrust_detail::kTeam > 1 && inner >= 128)
      for_each_team(outputs * g.m * g.n, thrust_detail::GemmElement<T>{g});
    else
      for_each(outputs * g.m * g.n, thrust_detail::EachOfTeamOfOne<thrust_detail::GemmElement<T>>{{g}});
  }
  template <class T>
  static void gather_sum_rows(const GatherSumArgs<T>& g) {
    for_each(g.segments * g.width, thrust_detail::GatherSumElement<T>{g});
  }

  // ---- reductions (these wait for the device) --------------------------------------------------------
  template <class T>
  static BatchTotals sum_metrics(const T* loss, const index_t* correct, index_t n, const T* check = nullptr,
                                 std::size_t check_count = 0) {
    thrust_detail::Totals* parts = thrust_detail::scratch<thrust_detail::Totals>();
    for_each(thrust_detail::kParts, thrust_detail::PartialTotals<T>{loss, correct, n, check, check_count, parts});
    thrust_detail::Totals host[thrust_detail::kParts];
    thrust::copy_n(thrust::device_pointer_cast(parts), thrust_detail::kParts, host);
    BatchTotals totals;
    for (const auto& t : host) {
      totals.loss_sum += t.loss_sum;
      totals.correct += t.correct;
      totals.finite = totals.finite && t.finite != 0;
    }
    return totals;
  }
};

}  // namespace tinyattn
