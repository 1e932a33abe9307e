// tinyattn/core/math.hpp — scalar math shared by every backend (host and device code).
#pragma once

#include <cmath>
#include <cstdint>

#include "tinyattn/core/config.hpp"

namespace tinyattn::math {

// exp(x) for float, branch-free so that a loop over it vectorizes (libm's expf does not without
// -ffast-math, which would also break NaN checks). Cephes' expf: range reduction x = n ln2 + r,
// |r| <= ln2/2, degree-5 minimax polynomial, scaling by 2^n through the exponent bits.
// Relative error below 2 ulp over [-87, 88]; below -87 the result is clamped to ~2^-126 (softmax
// terms that small do not change a sum of at least 1). NaN and infinite inputs give NaN: softmax
// inputs are finite in a healthy network, and a NaN must reach the loss so divergence is detected.
// GCC vectorizes the clamps only with -fno-trapping-math (clang's default); the tinyattn CMake target
// adds it, see README "Compiler flags".
TINYATTN_HD TINYATTN_FORCEINLINE float exp_fast(float x) {
  constexpr float kHi = 88.3762626647949f, kLo = -87.0f;
  constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  float clamped = x < kHi ? x : kHi;  // NaN -> kHi, then kept finite: the int conversion stays defined
  clamped = clamped > kLo ? clamped : kLo;
  // n = floor(clamped * log2(e) + 1/2), by truncation and a correction (floorf does not vectorize).
  const float t = clamped * kLog2e + 0.5f;
  std::int32_t i = static_cast<std::int32_t>(t);
  i -= t < static_cast<float>(i) ? 1 : 0;
  const float n = static_cast<float>(i);
  float r = clamped - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const std::int32_t bits = (i + 127) << 23;  // 2^n
#if defined(__CUDA_ARCH__)
  const float scale = __int_as_float(bits);
#else
  const float scale = __builtin_bit_cast(float, bits);  // memcpy would block vectorization
#endif
  return y * scale + (x - x);  // x - x: 0 for finite x, NaN for NaN and infinities
}

// exp for the library's scalar types: the fast float version above, libm for double (the gradient
// checks need full double accuracy).
template <class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE Scalar exp(Scalar x) {
  if constexpr (sizeof(Scalar) == sizeof(float)) {
    return exp_fast(x);
  } else {
    return ::exp(x);
  }
}

// log(x) for float, without a libm call (a third of the cost of glibc's logf in the per-sample loss):
// Cephes' logf — x = m 2^e with m in [sqrt(1/2), sqrt(2)), degree-8 polynomial in m - 1. Relative
// error below 2 ulp for normal positive x; x <= 0, NaN or infinity fall back to libm.
TINYATTN_HD TINYATTN_FORCEINLINE float log_fast(float x) {
  if (!(x >= 1.17549435e-38f && x <= 3.40282347e38f)) return ::logf(x);
#if defined(__CUDA_ARCH__)
  std::int32_t bits = __float_as_int(x);
#else
  std::int32_t bits = __builtin_bit_cast(std::int32_t, x);
#endif
  std::int32_t e = ((bits >> 23) & 0xff) - 126;
  bits = (bits & 0x007fffff) | 0x3f000000;  // mantissa in [0.5, 1)
#if defined(__CUDA_ARCH__)
  float m = __int_as_float(bits);
#else
  float m = __builtin_bit_cast(float, bits);
#endif
  const bool below = m < 0.707106781186547524f;  // a select, not a branch: it would mispredict half the time
  e -= below ? 1 : 0;
  m = below ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  const float fe = static_cast<float>(e);
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  return m + y + 0.693359375f * fe;
}

template <class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE Scalar log(Scalar x) {
  if constexpr (sizeof(Scalar) == sizeof(float)) {
    return log_fast(x);
  } else {
    return ::log(x);
  }
}

template <class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE Scalar sqrt(Scalar x) {
  return ::sqrt(x);
}

// The error function, for the exact GELU: erff for float (as torch's GELU in float32), erf for double.
template <class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE Scalar erf(Scalar x) {
  if constexpr (sizeof(Scalar) == sizeof(float)) {
    return ::erff(x);
  } else {
    return ::erf(x);
  }
}

// sqrt at compile time (Newton's iteration; exact to the last bit for the small integers it serves).
constexpr double constexpr_sqrt(double x) {
  double r = x > 1 ? x : 1.0;
  for (int i = 0; i < 64; ++i) r = 0.5 * (r + x / r);
  return r;
}

// 1 / sqrt(head_dim), the attention scale, as a compile-time constant.
template <class Scalar, index_t HeadDim>
inline constexpr Scalar inverse_sqrt = static_cast<Scalar>(1.0 / constexpr_sqrt(static_cast<double>(HeadDim)));

template <class Scalar>
TINYATTN_HD TINYATTN_FORCEINLINE bool is_finite(Scalar x) {
  // x - x is 0 for finite x and NaN for inf/NaN; works without <cmath> on every device.
  return (x - x) == (x - x);
}

}  // namespace tinyattn::math
