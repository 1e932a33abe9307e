// tinyattn/inspect/fourier.hpp — the Fourier spectrum of embeddings over a cyclic group, the picture of
// how a network grokked modular addition (Nanda et al. 2023): the trained W_E puts almost all of its
// weight on a few frequencies k, as cos(2 pi k a / P) and sin(2 pi k a / P) over the operands a.
//
// For rows a = 0..P-1 of an embedding (P, D) and frequency k = 0..P/2, the orthonormal basis vectors
// over a are c_0 = 1/sqrt(P), c_k = sqrt(2/P) cos(2 pi k a / P), s_k = sqrt(2/P) sin(2 pi k a / P) (for
// even P, k = P/2 has only its cosine, 1/sqrt(P) (-1)^a). The norm of frequency k is
// sqrt(sum over d of (c_k . W[:, d])^2 + (s_k . W[:, d])^2): the squared norms add up to |W|^2.
#pragma once

#include <cmath>
#include <vector>

#include "tinyattn/core/config.hpp"

namespace tinyattn {

// Norm per frequency k = 0..P/2 of the first P rows of `rows` (at least P rows of D values, row-major).
template <class Scalar>
std::vector<double> fourier_norms(const std::vector<Scalar>& rows, index_t P, index_t D) {
  require(P >= 2 && D >= 1 && rows.size() >= static_cast<std::size_t>(P) * D, "fourier_norms: ", rows.size(),
          " values for ", P, " rows of ", D);
  constexpr double kPi = 3.14159265358979323846;
  std::vector<double> norms(static_cast<std::size_t>(P / 2 + 1), 0.0);
  for (index_t k = 0; k <= P / 2; ++k) {
    const bool only_cosine = k == 0 || 2 * k == P;
    const double scale = only_cosine ? std::sqrt(1.0 / P) : std::sqrt(2.0 / P);
    double total = 0;
    for (index_t d = 0; d < D; ++d) {
      double c = 0, s = 0;
      for (index_t a = 0; a < P; ++a) {
        const double angle = 2 * kPi * static_cast<double>(k) * a / P;
        const double w = static_cast<double>(rows[static_cast<std::size_t>(a) * D + d]);
        c += std::cos(angle) * w;
        s += std::sin(angle) * w;
      }
      total += (c * c + (only_cosine ? 0.0 : s * s)) * scale * scale;
    }
    norms[static_cast<std::size_t>(k)] = std::sqrt(total);
  }
  return norms;
}

}  // namespace tinyattn
