// examples/minmax/minmax_sweep.hpp — `minmax sweep`: the reference experiment as examples/common/sweep.hpp
// sweeps it (seeds, learning rates, weight decays, training fractions; every file described there).
//
// A run trains as `minmax train --seed S --lr X --weight-decay X --train-fraction F` would: the seed is
// both the initial weights and the train/test split. Its mechanism summary: each head's mean attention
// from '=' to A, op and B over every input of max and of min (the notebook's maps, averaged).
#pragma once

#include <string>

#include "sweep.hpp"  // examples/common
#include "tinyattn/inspect/minmax_attention.hpp"
#include "tinyattn/io/weights.hpp"
#include "tinyattn/tinyattn.hpp"

namespace minmax {

struct MinMaxSweep {
  static constexpr const char* program = "minmax";
  using Net = tinyattn::AttentionNetwork<tinyattn::ReferenceShape>;
  static constexpr tinyattn::index_t kMaxN = 128;
  static constexpr double samples = 2.0 * kMaxN * kMaxN;

  static programs::SweepSpec defaults() {
    programs::SweepSpec s;
    const tinyattn::AdamWConfig adamw = tinyattn::MinMaxTask::adamw();
    s.lr = {adamw.lr}, s.weight_decay = {adamw.weight_decay}, s.train_fraction = {1.0 / 3};
    s.epochs = 750, s.eval_every = 1;
    return s;
  }

  static tinyattn::EnsembleMember member(const programs::SweepRun& run) {
    const tinyattn::MinMaxTask task(kMaxN, run.seed, run.train_fraction);
    tinyattn::EnsembleMember m;
    m.train = task.train(), m.test = task.test();
    m.options.adamw = tinyattn::MinMaxTask::adamw();
    return m;
  }

  static std::string mechanism_header() {
    std::string h;
    for (const char* op : {"max", "min"})
      for (int head = 0; head < Net::heads; ++head)
        for (const char* key : {"A", "op", "B"}) h += std::string(",") + op + "_h" + std::to_string(head) + "_" + key;
    return h;
  }

  static std::string mechanism(const Net& net) {
    const tinyattn::MinMaxAttentionMaps maps = tinyattn::minmax_attention_maps(net, tinyattn::MinMaxTask(kMaxN));
    std::string text;
    for (int op = 0; op < 2; ++op)
      for (tinyattn::index_t h = 0; h < maps.heads; ++h)
        for (tinyattn::index_t key = 0; key < maps.keys; ++key) {
          double sum = 0;
          for (tinyattn::index_t a = 0; a < maps.n; ++a)
            for (tinyattn::index_t b = 0; b < maps.n; ++b) sum += maps.weights[op][maps.index(h, key, a, b)];
          text += "," + programs::text_of(sum / (static_cast<double>(maps.n) * maps.n), "%.6f");
        }
    return text;
  }

  static tinyattn::io::Metadata metadata(const programs::SweepRun& run, const programs::SweepSpec&,
                                         std::int64_t epochs) {
    using programs::text_of;
    return {{"task", "minmax"},
            {"max_n", std::to_string(kMaxN)},
            {"seed", std::to_string(run.seed)},
            {"epochs", std::to_string(epochs)},
            {"lr", text_of(run.lr, "%.17g")},
            {"weight_decay", text_of(run.weight_decay, "%.17g")},
            {"minmax_train_fraction", text_of(run.train_fraction, "%.17g")},
            {"betas", "0.9,0.99"},
            {"eps", "1e-08"},
            {"optimizer", "AdamW"}};
  }
};

}  // namespace minmax
