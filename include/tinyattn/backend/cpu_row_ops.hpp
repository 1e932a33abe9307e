// tinyattn/backend/cpu_row_ops.hpp — the CPU backend's row reductions (see ops/row_ops.hpp), written
// with explicit vectors of the machine's register width (GCC/clang vector extensions): 16 floats with
// AVX-512 (and on other architectures, where the compiler splits them), 8 with AVX2. Float rows whose
// length is a multiple of simd::kLanes take them; everything else (and every translation unit nvcc
// compiles) falls back to GenericRowOps.
//
// Why not leave it to the auto-vectorizer: an OpenMP `simd reduction` keeps its partial sums in a
// stack array, so every step of a 9-vector softmax waits on a store-to-load round trip; and Eigen's
// fixed-size maps did not vectorize exp for odd lengths. Why not 16-float vectors everywhere: without
// AVX-512, GCC 12 does comparisons and ?: on them lane by lane in scalar registers, and moves them
// between 128-bit halves through the stack (bench/RESULTS.md).
#pragma once

#include <cstdint>
#include <cstring>

#include "tinyattn/core/math.hpp"
#include "tinyattn/ops/row_ops.hpp"

#if TINYATTN_HOST_SIMD && (defined(__AVX512F__) || defined(__AVX2__))
#include <immintrin.h>
#endif

#if TINYATTN_HOST_SIMD && !defined(__AVX512F__) && !defined(__AVX2__)
// Elsewhere the 64-byte vectors are wider than a register, and GCC warns once per translation unit
// that one returned by value would travel differently with other flags (-Wpsabi). These functions are
// always inlined, never called across objects built with other flags. The warning is given at the end
// of the unit, where a push/pop pair around this header no longer holds: it stays off for the rest of
// the unit. (They take vectors by const reference: a 64-byte parameter by value draws a note that no
// pragma silences.)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace tinyattn {

#if TINYATTN_HOST_SIMD
namespace simd {
#if defined(__AVX2__) && !defined(__AVX512F__)
inline constexpr index_t kLanes = 8;  // one ymm register
#define TINYATTN_SIMD_AVX2 1
#else
inline constexpr index_t kLanes = 16;
#define TINYATTN_SIMD_AVX2 0
#endif
using f32v = float __attribute__((vector_size(4 * kLanes)));
using i32v = std::int32_t __attribute__((vector_size(4 * kLanes)));
// Vector registers: 32 with AVX-512, 16 with AVX2; elsewhere a 16-float vector takes several of the
// machine's registers (counted as 8 of them).
#if defined(__AVX512F__)
inline constexpr index_t kRegisters = 32;
#elif TINYATTN_SIMD_AVX2
inline constexpr index_t kRegisters = 16;
#else
inline constexpr index_t kRegisters = 8;
#endif
// Row accumulators a loop keeps at once: those registers, less a few for its operands (at most 16, the
// longest row the AVX-512 form was measured with).
inline constexpr index_t kAccumulators = kRegisters - 4 < 16 ? kRegisters - 4 : 16;

TINYATTN_FORCEINLINE f32v load(const float* p) {
  f32v v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
TINYATTN_FORCEINLINE void store(float* p, const f32v& v) { std::memcpy(p, &v, sizeof v); }
TINYATTN_FORCEINLINE f32v splat(float x) { return f32v{} + x; }
TINYATTN_FORCEINLINE i32v lane_index() {
#if TINYATTN_SIMD_AVX2
  return i32v{0, 1, 2, 3, 4, 5, 6, 7};
#else
  return i32v{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
#endif
}
TINYATTN_FORCEINLINE f32v max(const f32v& a, const f32v& b) { return a > b ? a : b; }

// exp on a vector, table-based (1.7x faster than a degree-5 polynomial here): with
// k = round(x 16/ln2) and u = x - k ln2/16 (|u| <= ln2/32), exp(x) = 2^(k>>4) 2^((k&15)/16) exp(u),
// the middle factor from a 16-entry table held in registers, exp(u) by a cubic. Relative error
// below 2 ulp on [-87, 0], the range softmax needs (inputs are x - max <= 0); NaN gives NaN.
// With AVX-512 the power of two is applied by vscalefps, which underflows gracefully: no clamp to
// the normal range and no NaN fix-up (a cross-entropy row 1.7x faster, measured on Zen 4), and
// exp(x) below 2^-126 is the right subnormal down to x = -104, zero below. Elsewhere the exponent
// bits are added directly, after clamping x to -87 (about 2^-125 below it); infinities give NaN.
// (The masked forms of the intrinsics: the unmasked ones trip GCC 12's -Wuninitialized.)
TINYATTN_FORCEINLINE f32v exp(const f32v& x) {
  constexpr float kTable[16] = {1.0f,
                                1.04427378242741384f,
                                1.09050773266525766f,
                                1.13878863475669165f,
                                1.18920711500272107f,
                                1.24185781207348405f,
                                1.29683955465100967f,
                                1.35425554693689273f,
                                1.41421356237309505f,
                                1.47682614593949931f,
                                1.54221082540794082f,
                                1.61049033194925431f,
                                1.68179283050742908f,
                                1.75625216037329948f,
                                1.83400808640934246f,
                                1.91520656139714729f};
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low mantissa bits
#if defined(__AVX512F__)
  constexpr __mmask16 kAll = 0xFFFF;
  // max(-104, x) with x second: vmaxps returns its second operand when one is NaN, so NaN passes.
  const f32v clamped = (f32v)_mm512_maskz_max_ps(kAll, (__m512)splat(-104.0f), (__m512)x);
#else
  const f32v clamped = x > -87.0f ? x : splat(-87.0f);
#endif
  const f32v shifted = clamped * 23.0831206542234f + kMagic;  // x * 16/ln2, rounded
  const f32v kf = shifted - kMagic;
  f32v u = clamped - kf * 0.0433197021484375f;  // ln2/16 in two parts: k * high part is exact
  u = u - kf * 1.9966364561696537e-06f;
  const f32v expm1_u = ((u * (1.0f / 6.0f) + 0.5f) * u + 1.0f) * u;
#if defined(__AVX512F__)
  // vpermps reads the low 4 bits of each index: those of k (the bits of kMagic there are zero).
  const f32v two_j16 = (f32v)_mm512_maskz_permutexvar_ps(kAll, (__m512i)shifted, (__m512)load(kTable));
  const f32v y = two_j16 * expm1_u + two_j16;  // one rounding
  const __m512 two_exponent =
      _mm512_maskz_roundscale_ps(kAll, (__m512)(kf * 0.0625f), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  return (f32v)_mm512_maskz_scalef_ps(kAll, (__m512)y, two_exponent);
#else
  i32v k;
  std::memcpy(&k, &shifted, sizeof k);
  k -= 0x4B400000;  // the bits of kMagic
#if TINYATTN_SIMD_AVX2
  // vpermps picks by the low 3 bits of k within each half of the table; bit 3 chooses the half.
  const __m256 low = _mm256_permutevar8x32_ps(_mm256_loadu_ps(kTable), (__m256i)k);
  const __m256 high = _mm256_permutevar8x32_ps(_mm256_loadu_ps(kTable + 8), (__m256i)k);
  const f32v two_j16 = (f32v)_mm256_blendv_ps(low, high, (__m256)(k << 28));  // bit 3 -> sign
#elif defined(__clang__)  // clang has no variable __builtin_shuffle; this lane loop is correct, slower
  f32v two_j16;
  for (int l = 0; l < kLanes; ++l) two_j16[l] = kTable[k[l] & 15];
#else
  const f32v two_j16 = __builtin_shuffle(load(kTable), k & 15);
#endif
  const f32v y = two_j16 * expm1_u + two_j16;                                 // one rounding
  i32v bits;
  std::memcpy(&bits, &y, sizeof bits);
  bits += (k >> 4) << 23;  // times 2^(k>>4), straight into the exponent (never below 2^-126 here)
  f32v result;
  std::memcpy(&result, &bits, sizeof result);
  return result + (x - x);
#endif
}

// Bit l set where lane l of a equals b.
TINYATTN_FORCEINLINE std::uint32_t equal_mask(const f32v& a, const f32v& b) {
#if defined(__AVX512F__)
  return _mm512_cmpeq_ps_mask((__m512)a, (__m512)b);
#elif TINYATTN_SIMD_AVX2
  return static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps((__m256)a, (__m256)b, _CMP_EQ_OQ)));
#else
  const i32v equal = a == b;
  std::uint32_t mask = 0;
  for (int l = 0; l < kLanes; ++l) mask |= static_cast<std::uint32_t>(equal[l] & 1) << l;
  return mask;
#endif
}

// Horizontal sum and maximum as trees (log2 kLanes shuffle steps): a serial chain over the
// lanes at the end of every row would sit on the critical path of the per-sample kernels. swap<G>
// exchanges neighbouring groups of G lanes, for float and integer lanes alike.
#if defined(__clang__)
#define TINYATTN_SHUFFLE(v, ...) __builtin_shufflevector(v, v, __VA_ARGS__)
#else
#define TINYATTN_SHUFFLE(v, ...) __builtin_shuffle(v, i32v{__VA_ARGS__})
#endif
template <int G, class V>
TINYATTN_FORCEINLINE V swap(const V& v) {
#if TINYATTN_SIMD_AVX2
  if constexpr (G == 4) return TINYATTN_SHUFFLE(v, 4, 5, 6, 7, 0, 1, 2, 3);
  if constexpr (G == 2) return TINYATTN_SHUFFLE(v, 2, 3, 0, 1, 6, 7, 4, 5);
  if constexpr (G == 1) return TINYATTN_SHUFFLE(v, 1, 0, 3, 2, 5, 4, 7, 6);
#else
  if constexpr (G == 8) return TINYATTN_SHUFFLE(v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  if constexpr (G == 4) return TINYATTN_SHUFFLE(v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
  if constexpr (G == 2) return TINYATTN_SHUFFLE(v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  if constexpr (G == 1) return TINYATTN_SHUFFLE(v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
#endif
}
#undef TINYATTN_SHUFFLE
// Every lane of the result holds op over all lanes of v.
template <class V, class Op>
TINYATTN_FORCEINLINE V all_lanes(V v, Op op) {
  if constexpr (kLanes == 16) v = op(v, swap<8>(v));
  v = op(v, swap<4>(v));
  v = op(v, swap<2>(v));
  return op(v, swap<1>(v));
}
TINYATTN_FORCEINLINE float sum(const f32v& lanes) {
  return all_lanes(lanes, [](const f32v& a, const f32v& b) { return a + b; })[0];
}
TINYATTN_FORCEINLINE float max(const f32v& lanes) {
  return all_lanes(lanes, [](const f32v& a, const f32v& b) { return max(a, b); })[0];
}
// out[j] = sum of the lanes of v[j], j < 8: pairs of vectors are folded into one (each half-width
// lane group now holding a partial sum of one of them) until one vector holds all eight sums.
#if !defined(__clang__) && !TINYATTN_SIMD_AVX2  // clang: store8_sums loops; AVX2: vhaddps
TINYATTN_FORCEINLINE f32v fold(const f32v& a, const f32v& b, const i32v& low_half, const i32v& high_half) {
  return __builtin_shuffle(a, b, low_half) + __builtin_shuffle(a, b, high_half);
}
#endif
TINYATTN_FORCEINLINE void store8_sums(const f32v* v, float* out) {
#if defined(__clang__)
  for (int j = 0; j < 8; ++j) out[j] = sum(v[j]);
#elif TINYATTN_SIMD_AVX2
  // (j, lanes): [0 01, 0 23, 1 01, 1 23 | 0 45, 0 67, 1 45, 1 67], and so on.
  const __m256 t01 = _mm256_hadd_ps((__m256)v[0], (__m256)v[1]), t23 = _mm256_hadd_ps((__m256)v[2], (__m256)v[3]);
  const __m256 t45 = _mm256_hadd_ps((__m256)v[4], (__m256)v[5]), t67 = _mm256_hadd_ps((__m256)v[6], (__m256)v[7]);
  // [0 0-3, 1 0-3, 2 0-3, 3 0-3 | 0 4-7, 1 4-7, 2 4-7, 3 4-7], and the same for 4..7.
  const __m256 u0123 = _mm256_hadd_ps(t01, t23), u4567 = _mm256_hadd_ps(t45, t67);
  _mm256_storeu_ps(
      out, _mm256_add_ps(_mm256_permute2f128_ps(u0123, u4567, 0x20), _mm256_permute2f128_ps(u0123, u4567, 0x31)));
#else
  // Step 1: lanes 0-7 of a with 0-7 of b, and 8-15 of a with 8-15 of b: 8 lanes each, summed.
  const i32v lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
  const i32v hi8 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
  const f32v a01 = fold(v[0], v[1], lo8, hi8), a23 = fold(v[2], v[3], lo8, hi8);
  const f32v a45 = fold(v[4], v[5], lo8, hi8), a67 = fold(v[6], v[7], lo8, hi8);
  // Step 2: groups of 4 lanes: [v0 v0 v1 v1] + ... -> 4 lanes per vector.
  const i32v lo4 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
  const i32v hi4 = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
  const f32v b0123 = fold(a01, a23, lo4, hi4), b4567 = fold(a45, a67, lo4, hi4);
  // Step 3: groups of 2 lanes.
  const i32v lo2 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
  const i32v hi2 = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
  const f32v c = fold(b0123, b4567, lo2, hi2);
  // Step 4: adjacent lanes; lane 2m holds the sum for one row.
  const f32v d = c + swap<1>(c);
  float lanes[16];
  store(lanes, d);
  // Which row each even lane holds follows from the index patterns above.
  constexpr int kRowOfLane[8] = {0, 4, 2, 6, 1, 5, 3, 7};
  for (int m = 0; m < 8; ++m) out[kRowOfLane[m]] = lanes[2 * m];
#endif
}
}  // namespace simd
#endif

// A team of one: shares are whole rows; what is not overridden here is GenericRowOps<1>'s.
struct CpuRowOps : GenericRowOps<1> {
#if TINYATTN_HOST_SIMD
  // Float rows of whole vectors take the vector forms.
  template <class Scalar, index_t N>
  static constexpr bool kVectorRow = std::is_same_v<Scalar, float>&& N % simd::kLanes == 0;
#endif

  template <index_t N, class Scalar>
  TINYATTN_HD static TINYATTN_FORCEINLINE Scalar dot(const Scalar* a, const Scalar* b) {
#if TINYATTN_HOST_SIMD
    if constexpr (kVectorRow<Scalar, N>) {
      simd::f32v acc = simd::splat(0);
      for (index_t c = 0; c < N; c += simd::kLanes) acc += simd::load(a + c) * simd::load(b + c);
      return simd::sum(acc);
    }
#endif
    if constexpr (N % 8 == 0) {
      // Eight partial sums, column c into sum c mod 8: one vector register the compiler can keep (a
      // single running sum is a chain of dependent adds that no vectorizer may reorder).
      Scalar acc[8] = {};
      for (index_t c = 0; c < N; c += 8)
        for (index_t l = 0; l < 8; ++l) acc[l] += a[c + l] * b[c + l];
      return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    }
    return GenericRowOps<1>::dot<N>(a, b);
  }

  // Row by row in vector registers; left to the compiler, an inner loop over many rows (J = 17 for
  // 4 heads) gets vectorized across rows with gathers instead, 15x slower.
  template <index_t Width, index_t J, class Scalar>
  TINYATTN_HD static TINYATTN_FORCEINLINE void mix(const Scalar* const* rows, const Scalar* w, Scalar* out, Team team) {
#if TINYATTN_HOST_SIMD
    if constexpr (kVectorRow<Scalar, Width>) {
      for (index_t c = 0; c < Width; c += simd::kLanes) {
        simd::f32v acc = simd::splat(0);
        for (index_t j = 0; j < J; ++j) acc += w[j] * simd::load(rows[j] + c);
        simd::store(out + c, acc);
      }
      return;
    }
#endif
    GenericRowOps<1>::mix<Width, J>(rows, w, out, team);
  }

  // J dot products; for rows of whole vectors the horizontal sums of up to 8 rows are done together,
  // as a transpose-and-add tree (a few shuffles and adds instead of log2(lanes) per row).
  template <index_t Width, index_t J, class Scalar>
  TINYATTN_HD static TINYATTN_FORCEINLINE void dots(const Scalar* g, const Scalar* const* rows, Scalar* out,
                                                    Team team) {
#if TINYATTN_HOST_SIMD
    if constexpr (kVectorRow<Scalar, Width> && J >= 4) {
      for (index_t j0 = 0; j0 < J; j0 += 8) {
        simd::f32v acc[8];
        for (index_t j = 0; j < 8; ++j) acc[j] = simd::splat(0);
        for (index_t c = 0; c < Width; c += simd::kLanes) {
          const simd::f32v gc = simd::load(g + c);
          for (index_t j = 0; j < 8; ++j)
            if (j0 + j < J) acc[j] += gc * simd::load(rows[j0 + j] + c);
        }
        float sums[8];
        simd::store8_sums(acc, sums);
        for (index_t j = 0; j < 8; ++j)
          if (j0 + j < J) out[j0 + j] = sums[j];
      }
      return;
    }
#endif
    for (index_t j = 0; j < J; ++j) out[j] = dot<Width>(g, rows[j]);
    (void)team;
  }

  template <index_t V, index_t Vp, class Scalar>
  TINYATTN_HD static TINYATTN_FORCEINLINE CrossEntropyResult cross_entropy(const Scalar* logits, index_t target,
                                                                           Scalar grad_scale, Scalar* dlogits,
                                                                           Team team) {
#if TINYATTN_HOST_SIMD
    if constexpr (kVectorRow<Scalar, Vp>) {
      using namespace simd;
      constexpr index_t blocks = Vp / kLanes;
      // Block k of the row, pad lanes (at V and beyond: the last block or two) at -inf.
      const auto block = [logits](index_t k) {
        const f32v v = load(logits + kLanes * k);
        if (kLanes * (k + 1) > V) return (lane_index() + kLanes * k) < V ? v : splat(-__builtin_huge_valf());
        return v;
      };
      // The row stays in registers where they hold it (9 vectors of 16 for the reference with AVX-512's
      // 32); otherwise (AVX2: 18 of 8 in 16 registers) it would spill, so each step reads the row
      // again from memory (L1). Both forms do the same operations in the same order: the same bits.
      constexpr bool kRowInRegisters = 2 * blocks <= kRegisters - 4;
      f32v v[kRowInRegisters ? blocks : 1];
      if constexpr (kRowInRegisters)
        for (index_t k = 0; k < blocks; ++k) v[k] = block(k);
      const auto row = [&](index_t k) {
        if constexpr (kRowInRegisters)
          return v[k];
        else
          return block(k);
      };
      // Maximum in three independent chains (short dependency chains let the next sample's work
      // overlap this one's), then across lanes.
      f32v top3[3] = {row(0), row(0), row(0)};
      for (index_t k = 1; k < blocks; ++k) top3[k % 3] = simd::max(top3[k % 3], row(k));
      const float top = simd::max(simd::max(simd::max(top3[0], top3[1]), top3[2]));
      const f32v top_v = splat(top);
      // First index of the maximum (torch.argmax): the lowest lane holding it in the lowest block
      // that does, by scalar bit operations beside the vector work.
      index_t best = Vp;
      for (index_t k = blocks - 1; k >= 0; --k) {
        const std::uint32_t hits = equal_mask(row(k), top_v);
        best = hits ? kLanes * k + __builtin_ctz(hits) : best;
      }
      const float target_logit = logits[target];
      // exp(x - max) (pad lanes dropped) and its sum, in three chains again; without the registers
      // for them the exponentials wait in dlogits for the normalisation.
      f32v e[kRowInRegisters ? blocks : 1], total3[3] = {splat(0), splat(0), splat(0)};
      for (index_t k = 0; k < blocks; ++k) {
        f32v ek = simd::exp(row(k) - top_v);
        if (kLanes * (k + 1) > V) ek = (lane_index() + kLanes * k) < V ? ek : splat(0);
        total3[k % 3] += ek;
        if constexpr (kRowInRegisters)
          e[k] = ek;
        else if (dlogits)
          store(dlogits + kLanes * k, ek);
      }
      const float total = sum(total3[0] + total3[1] + total3[2]);
      if (dlogits) {
        const float inv_total = 1.0f / total;
        for (index_t k = 0; k < blocks; ++k) {
          const i32v index = lane_index() + kLanes * k;
          const f32v onehot = index == target ? splat(1) : splat(0);
          const f32v ek = kRowInRegisters ? e[k] : load(dlogits + kLanes * k);
          store(dlogits + kLanes * k, (ek * inv_total - onehot) * grad_scale);
        }
      }
      const float loss = math::log(total) + (top - target_logit);  // the difference first: exact near the top
      return {static_cast<double>(loss), best == target};
    }
#endif
    return GenericRowOps<1>::cross_entropy<V, Vp>(logits, target, grad_scale, dlogits, team);
  }
};

}  // namespace tinyattn
