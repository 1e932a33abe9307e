// tinyattn/train/adamw.hpp — AdamW over one flat parameter buffer, with torch.optim.AdamW semantics.
//
// Per step t (1-based), for every parameter p with gradient g, as torch 1.13's single-tensor AdamW:
//   p <- p * (1 - lr * weight_decay)                    decoupled weight decay, applied first
//   m <- beta1 * m + (1 - beta1) * g
//   v <- beta2 * v + (1 - beta2) * g * g
//   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Scalar factors are computed in double and rounded once, as PyTorch does with its Python floats.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "tinyattn/backend/primitives.hpp"
#include "tinyattn/train/adamw_config.hpp"

namespace tinyattn {

template <class Backend, class Scalar>
class AdamW {
  using P = Primitives<Backend>;

 public:
  AdamW(std::size_t parameter_count, const AdamWConfig& config) : count_(parameter_count), config_(config) {
    validate(config);
    P::allocate(m_, count_);
    P::allocate(v_, count_);
  }

  struct Update {
    Scalar* p;
    Scalar* m;
    Scalar* v;
    const Scalar* g;
    Scalar decay, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, bias2_sqrt, eps;
    TINYATTN_HD void operator()(index_t i) const {
      const Scalar grad = g[i];
      const Scalar param = p[i] * decay;
      const Scalar mi = m[i] * beta1 + one_minus_beta1 * grad;
      const Scalar vi = v[i] * beta2 + one_minus_beta2 * grad * grad;
      m[i] = mi;
      v[i] = vi;
      p[i] = param - step_size * (mi / (math::sqrt(vi) / bias2_sqrt + eps));
    }
  };

  // One step over params (count) with grads (count), both on the backend.
  void step(Scalar* params, const Scalar* grads) {
    ++steps_;
    const double t = static_cast<double>(steps_);
    const double bias1 = 1.0 - std::pow(config_.beta1, t), bias2 = 1.0 - std::pow(config_.beta2, t);
    const Update u{params,
                   P::data(m_),
                   P::data(v_),
                   grads,
                   static_cast<Scalar>(1.0 - config_.lr * config_.weight_decay),
                   static_cast<Scalar>(config_.beta1),
                   static_cast<Scalar>(1.0 - config_.beta1),
                   static_cast<Scalar>(config_.beta2),
                   static_cast<Scalar>(1.0 - config_.beta2),
                   static_cast<Scalar>(config_.lr / bias1),
                   static_cast<Scalar>(std::sqrt(bias2)),
                   static_cast<Scalar>(config_.eps)};
    P::for_each(static_cast<index_t>(count_), u);
  }

  const AdamWConfig& config() const { return config_; }
  std::int64_t steps() const { return steps_; }

  // Optimizer state for checkpoints: both moments (host copies) and the step count.
  std::vector<Scalar> first_moment() const { return download(m_); }
  std::vector<Scalar> second_moment() const { return download(v_); }
  void restore(const std::vector<Scalar>& m, const std::vector<Scalar>& v, std::int64_t steps) {
    require(m.size() == count_ && v.size() == count_, "AdamW::restore: moments have ", m.size(), " and ", v.size(),
            " values, expected ", count_);
    require(steps >= 0, "AdamW::restore: step count must be >= 0, found ", steps);
    P::upload(m_, m.data(), m.size());
    P::upload(v_, v.data(), v.size());
    steps_ = steps;
  }

 private:
  std::vector<Scalar> download(const typename P::template buffer<Scalar>& b) const {
    std::vector<Scalar> host(count_);
    P::download(b, host.data());
    return host;
  }

  std::size_t count_;
  AdamWConfig config_;
  typename P::template buffer<Scalar> m_, v_;
  std::int64_t steps_ = 0;
};

}  // namespace tinyattn
