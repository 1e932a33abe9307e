// tinyattn/ops/row_ops.hpp — the row-level operations per-sample kernels are built from, as a policy.
//
// A per-sample kernel (model/sample_kernels.hpp) is run by a *team* of threads: one thread on a CPU
// (vectorized), one warp of 32 on a GPU (coalesced, registers instead of local memory). Each team
// member holds its *share* of a row: element c lives with member c % size, at index c / size. Kernels
// are written once against this interface; each backend names its implementation
// (Primitives<B>::row_ops):
//   GenericRowOps<Team>  plain loops, TINYATTN_HD; team reductions by warp shuffles on CUDA
//   CpuRowOps            the CPU backend's, explicit 64-byte vectors (backend/cpu_row_ops.hpp)
//
//   share<N>                            elements of an N-row a member holds
//   team_sum / team_max / team_min      reductions over the team, every member gets the result
//   load_share<N>(row, share) / store_share<N>(share, row)     global row <-> member's share
//   mix<Width, J>(rows, w, out)         out = sum_j w[j] rows[j] (shares)
//   dots<Width, J>(g, rows, out)        out[j] = g . rows[j] (g a share; out complete on every member)
//   cross_entropy<V, Vp>(logits, target, s, d)   loss and hit of a padded logits row (shares; entries
//                                       past V ignored); with d non-null, d = (softmax - onehot) * s
//   dot<N>(a, b)                        small whole rows, computed by every member alike
#pragma once

#include "tinyattn/core/config.hpp"
#include "tinyattn/core/math.hpp"

namespace tinyattn {

struct Team {
  index_t lane;  // this member, in [0, size)
  index_t size;  // 1 on a CPU, 32 (a warp) on CUDA
};

struct CrossEntropyResult {
  double loss;   // logsumexp(logits) - logits[target]; NaN when any logit is NaN
  bool correct;  // first argmax == target, as torch.argmax
};

template <index_t TeamSize>
struct GenericRowOps {
  static_assert(TeamSize == 1 || TeamSize == 32, "GenericRowOps: a team is one thread or one warp");
  static constexpr index_t team_size = TeamSize;
  template <index_t N>
  static constexpr index_t share = (N + TeamSize - 1) / TeamSize;

  // ---- team reductions: a butterfly, so every member ends with the same (commutative) result ----
  template <class S>
  TINYATTN_HD static TINYATTN_FORCEINLINE S team_sum(S v) {
#if defined(__CUDA_ARCH__)
    if constexpr (TeamSize > 1) {
      for (int offset = TeamSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    }
#endif
    return v;
  }
  template <class S>
  TINYATTN_HD static TINYATTN_FORCEINLINE S team_max(S v) {
#if defined(__CUDA_ARCH__)
    if constexpr (TeamSize > 1) {
      for (int offset = TeamSize / 2; offset > 0; offset /= 2) {
        const S other = __shfl_xor_sync(0xffffffffu, v, offset);
        v = other > v ? other : v;
      }
    }
#endif
    return v;
  }
  template <class S>
  TINYATTN_HD static TINYATTN_FORCEINLINE S team_min(S v) {
#if defined(__CUDA_ARCH__)
    if constexpr (TeamSize > 1) {
      for (int offset = TeamSize / 2; offset > 0; offset /= 2) {
        const S other = __shfl_xor_sync(0xffffffffu, v, offset);
        v = other < v ? other : v;
      }
    }
#endif
    return v;
  }
  // The value `v` of member `from` (every member passes its own v).
  template <class S>
  TINYATTN_HD static TINYATTN_FORCEINLINE S team_broadcast(S v, index_t from) {
#if defined(__CUDA_ARCH__)
    if constexpr (TeamSize > 1) {
      v = __shfl_sync(0xffffffffu, v, from);
    }
#endif
    (void)from;
    return v;
  }

  // ---- shares ----------------------------------------------------------------------------------------
  template <index_t N, class S>
  TINYATTN_HD static TINYATTN_FORCEINLINE void load_share(const S* row, S* out, Team t) {
    for (index_t k = 0; k < share<N>; ++k) {
      const index_t c = t.lane + k * TeamSize;
      out[k] = c < N ? row[c] : S(0);
    }
  }
  template <index_t N, class S>
  TINYATTN_HD static TINYATTN_FORCEINLINE void store_share(const S* in, S* row, Team t) {
    for (index_t k = 0; k < share<N>; ++k) {
      const index_t c = t.lane + k * TeamSize;
      if (c < N) row[c] = in[k];
    }
  }

  template <index_t Width, index_t J, class S>
  TINYATTN_HD static TINYATTN_FORCEINLINE void mix(const S* const* rows, const S* w, S* out, Team t) {
    TINYATTN_SIMD
    for (index_t k = 0; k < share<Width>; ++k) {
      const index_t c = t.lane + k * TeamSize;
      S acc = 0;
      if (TeamSize == 1 || c < Width)
        for (index_t j = 0; j < J; ++j) acc += w[j] * rows[j][c];
      out[k] = acc;
    }
  }

  template <index_t Width, index_t J, class S>
  TINYATTN_HD static TINYATTN_FORCEINLINE void dots(const S* g, const S* const* rows, S* out, Team t) {
    for (index_t j = 0; j < J; ++j) {
      S acc = 0;
      for (index_t k = 0; k < share<Width>; ++k) {
        const index_t c = t.lane + k * TeamSize;
        if (c < Width) acc += g[k] * rows[j][c];
      }
      out[j] = team_sum(acc);
    }
  }

  template <index_t V, index_t Vp, class S>
  TINYATTN_HD static TINYATTN_FORCEINLINE CrossEntropyResult cross_entropy(const S* logits, index_t target,
                                                                           S grad_scale, S* dlogits, Team t) {
    // Maximum, then its first index (torch.argmax), over the valid entries of every share.
    bool found = false;
    S top = 0;
    for (index_t k = 0; k < share<Vp>; ++k) {
      const index_t c = t.lane + k * TeamSize;
      if (c < V && (!found || logits[k] > top)) {
        top = logits[k];
        found = true;
      }
    }
    if constexpr (TeamSize > 1) top = team_max(found ? top : -S(3.4e38));
    index_t best = Vp;
    for (index_t k = 0; k < share<Vp>; ++k) {
      const index_t c = t.lane + k * TeamSize;
      if (c < V && logits[k] == top && c < best) best = c;
    }
    best = team_min(best);
    S total = 0;
    for (index_t k = 0; k < share<Vp>; ++k) {
      const index_t c = t.lane + k * TeamSize;
      const S e = c < V ? math::exp(logits[k] - top) : S(0);
      if (dlogits) dlogits[k] = e;
      total += e;
    }
    total = team_sum(total);
    if (dlogits) {
      const S inv_total = S(1) / total;
      for (index_t k = 0; k < share<Vp>; ++k) {
        const index_t c = t.lane + k * TeamSize;
        dlogits[k] = (dlogits[k] * inv_total - (c == target ? S(1) : S(0))) * grad_scale;
      }
    }
    const index_t owner = target % TeamSize, slot = target / TeamSize;
    const S target_logit = team_broadcast(t.lane == owner ? logits[slot] : S(0), owner);
    const S loss = math::log(total) + (top - target_logit);  // the difference first: exact near the top
    return {static_cast<double>(loss), best == target};
  }

  // ---- small whole rows, every member alike -----------------------------------------------------------
  template <index_t N, class S>
  TINYATTN_HD static TINYATTN_FORCEINLINE S dot(const S* a, const S* b) {
    S acc = 0;
    for (index_t i = 0; i < N; ++i) acc += a[i] * b[i];
    return acc;
  }
};

}  // namespace tinyattn
