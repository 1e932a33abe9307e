// tinyattn/train/adamw_config.hpp — AdamW's hyper-parameters (the optimizer is train/adamw.hpp).
#pragma once

#include <cmath>

#include "tinyattn/core/config.hpp"

namespace tinyattn {

// The defaults are torch.optim.AdamW's. The reference experiment uses lr 2e-3, weight decay 1.0,
// betas (0.9, 0.99) (MinMaxTask::adamw()); the grokking run lr 1e-3, weight decay 1.0, betas (0.9, 0.98).
struct AdamWConfig {
  double lr = 1e-3;
  double weight_decay = 1e-2;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

inline void validate(const AdamWConfig& c) {
  require(std::isfinite(c.lr) && c.lr > 0, "AdamW: learning rate must be a positive number, found ", c.lr);
  require(std::isfinite(c.weight_decay) && c.weight_decay >= 0,
          "AdamW: weight decay must be a non-negative number, found ", c.weight_decay);
  require(c.beta1 >= 0 && c.beta1 < 1, "AdamW: beta1 must be in [0, 1), found ", c.beta1);
  require(c.beta2 >= 0 && c.beta2 < 1, "AdamW: beta2 must be in [0, 1), found ", c.beta2);
  require(std::isfinite(c.eps) && c.eps > 0, "AdamW: eps must be a positive number, found ", c.eps);
}

}  // namespace tinyattn
