// tinyattn/core/config.hpp — the few macros and helpers every other header builds on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>

// One host/device macro for code that runs on every backend. nvcc defines __CUDACC__; under a host
// compiler (g++, clang) CCCL 3 no longer defines __host__/__device__, so we never spell them directly.
#if defined(__CUDACC__)
#define TINYATTN_HD __host__ __device__
#define TINYATTN_DEVICE_COMPILER 1
#else
#define TINYATTN_HD
#define TINYATTN_DEVICE_COMPILER 0
#endif

#if defined(__CUDACC__)
#define TINYATTN_FORCEINLINE __forceinline__
#else
#define TINYATTN_FORCEINLINE inline __attribute__((always_inline))
#endif

// Explicit 64-byte vectors (GCC/clang vector extensions) for the CPU backend's hot loops. Off in
// translation units compiled by nvcc (its front end rejects them) and on x86 with neither AVX-512 nor
// AVX2 with FMA (there such vectors would be split in four): the CPU backend then uses its portable
// loops, same results up to rounding. With AVX2 a vector is two 256-bit halves
// (backend/cpu_row_ops.hpp has what differs).
#if defined(__GNUC__) && !defined(__CUDACC__) && \
    (defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__)) || !(defined(__x86_64__) || defined(__i386__)))
#define TINYATTN_HOST_SIMD 1
#else
#define TINYATTN_HOST_SIMD 0
#endif

// Ask the host compiler to vectorize the loop that follows (OpenMP SIMD; nothing in device code or
// without OpenMP). The _SUM/_MAX forms declare the loop's reduction variable, which lets the compiler
// split the sum across vector lanes: a fixed, deterministic order for a given binary.
#define TINYATTN_PRAGMA(x) _Pragma(#x)
#if !defined(__CUDA_ARCH__) && defined(_OPENMP)
#define TINYATTN_SIMD TINYATTN_PRAGMA(omp simd)
#define TINYATTN_SIMD_SUM(var) TINYATTN_PRAGMA(omp simd reduction(+ : var))
#define TINYATTN_SIMD_MAX(var) TINYATTN_PRAGMA(omp simd reduction(max : var))
#define TINYATTN_SIMD_MIN(var) TINYATTN_PRAGMA(omp simd reduction(min : var))
#else
#define TINYATTN_SIMD
#define TINYATTN_SIMD_SUM(var)
#define TINYATTN_SIMD_MAX(var)
#define TINYATTN_SIMD_MIN(var)
#endif

// Unroll the small loop that follows completely (loops over heads and positions): a loop over samples
// around it can then be vectorized across samples, and device code keeps its arrays in registers.
#if defined(__CUDACC__) || defined(__clang__)
#define TINYATTN_UNROLL TINYATTN_PRAGMA(unroll)
#elif defined(__GNUC__)
#define TINYATTN_UNROLL TINYATTN_PRAGMA(GCC unroll 64)
#else
#define TINYATTN_UNROLL
#endif

namespace tinyattn {

using index_t = std::int32_t;  // sample, row and element indices: every buffer is < 2^31 elements

// For static_assert in a primary template that must never be instantiated.
template <class...>
inline constexpr bool dependent_false = false;

// Thrown for every invalid argument or input a user can pass at run time. The message always says
// what was wrong, where, what was expected and what was found.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

// Throws tinyattn::Error built from the message parts when `ok` is false.
template <class... Parts>
void require(bool ok, const Parts&... message_parts) {
  if (!ok) throw Error(detail::concat(message_parts...));
}

}  // namespace tinyattn
