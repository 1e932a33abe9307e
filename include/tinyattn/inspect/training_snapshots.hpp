// tinyattn/inspect/training_snapshots.hpp — attention as it forms during training, and progress measures.
//
//   tinyattn::TrainingSnapshots<Net> snapshots(probe, {{"max", max_batch}, {"min", min_batch}});
//   trainer.run(epochs, [&](const tinyattn::EpochMetrics& m) {
//     if (m.epoch % 10 == 0) snapshots.take(net, m.epoch);   // every k epochs
//     return true;
//   });
//   snapshots.frames()      // (frames, N, L, H, T) bytes: the last query's pattern, weight * 255 rounded
//   snapshots.measures()    // per frame: each head's attention entropy, each tensor's norm, subset losses
//
// A frame keeps, for every probe sample, the pattern of the scored (last) query of every head of every
// layer — the attention the model uses for its answer — as bytes: 1/255 resolution on weights in [0, 1],
// a quarter of float32's size (the reference model's 32,768 inputs: 786 kB a frame). One-block models
// on the fast path read the patterns off its QK tables (tinyattn::circuits): the last query's pattern is
// softmax_k(qk[h][row(query)][row(key k)] / sqrt(dh)), without a forward pass over the probe; other
// models run inspect(). Tests hold the two against each other.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tinyattn/data/token_batch.hpp"
#include "tinyattn/inspect/circuits.hpp"

namespace tinyattn {

struct ProgressMeasures {
  std::int64_t epoch = 0;
  // (L, H): mean over the probe samples of the entropy (nats) of the last query's pattern; ln(T) for
  // uniform attention, 0 for attention on one position.
  std::vector<double> head_entropy;
  // Frobenius norm of every parameter tensor, by TransformerLens name, in layout order.
  std::vector<std::pair<std::string, double>> tensor_norms;
  // Loss and accuracy on each named subset of the data.
  std::vector<std::pair<std::string, double>> subset_loss, subset_accuracy;
};

template <class Net>
class TrainingSnapshots {
 public:
  static constexpr index_t L = Net::layers, H = Net::heads, T = Net::context;

  // `probe`: the samples whose attention is kept; `subsets`: named batches (with targets) whose loss
  // and accuracy are measured at every snapshot.
  explicit TrainingSnapshots(TokenBatch probe, std::vector<std::pair<std::string, TokenBatch>> subsets = {})
      : probe_(std::move(probe)), subsets_(std::move(subsets)) {
    for (index_t l = 0; l < L; ++l) names_.push_back("blocks." + std::to_string(l) + ".attn.hook_pattern");
  }

  void take(const Net& net, std::int64_t epoch) {
    const index_t N = probe_.size();
    const std::size_t frame = static_cast<std::size_t>(L) * N * H * T;
    frames_.resize(frames_.size() + frame);
    std::uint8_t* out = frames_.data() + frames_.size() - frame;
    ProgressMeasures m;
    m.epoch = epoch;
    m.head_entropy.assign(static_cast<std::size_t>(L) * H, 0.0);
    // One head's pattern row of the last query of sample n, layer l: its bytes and its entropy.
    const auto keep = [&](index_t l, index_t h, const double* row) {
      double entropy = 0;
      for (index_t k = 0; k < T; ++k) {
        const double w = row[k];
        if (w > 0) entropy -= w * std::log(w);
        *out++ = static_cast<std::uint8_t>(std::lround(std::fmin(std::fmax(w, 0.0), 1.0) * 255.0));
      }
      m.head_entropy[static_cast<std::size_t>(l) * H + h] += entropy / N;
    };
    double row[T];
    if constexpr (L == 1 && Net::has_table_engine) {
      const auto c = circuits(net);
      const double scale = 1.0 / std::sqrt(static_cast<double>(Net::head_dim));
      for (index_t n = 0; n < N; ++n) {
        const index_t* tokens = probe_.sample(n);
        const index_t query = c.row(tokens[T - 1], T - 1);
        for (index_t h = 0; h < H; ++h) {
          double top = -INFINITY, sum = 0;
          for (index_t k = 0; k < T; ++k) top = std::fmax(top, row[k] = static_cast<double>(c.qk_at(h, query, c.row(tokens[k], k))) * scale);
          for (index_t k = 0; k < T; ++k) sum += row[k] = std::exp(row[k] - top);
          for (index_t k = 0; k < T; ++k) row[k] /= sum;
          keep(0, h, row);
        }
      }
    } else {
      const auto cache = net.inspect(probe_, names_);
      for (index_t n = 0; n < N; ++n)
        for (index_t l = 0; l < L; ++l) {
          const auto& p = cache[names_[static_cast<std::size_t>(l)]].values;  // (N, H, T, T)
          for (index_t h = 0; h < H; ++h) {
            const auto* pattern = p.data() + ((static_cast<std::size_t>(n) * H + h) * T + (T - 1)) * T;  // query T - 1
            for (index_t k = 0; k < T; ++k) row[k] = static_cast<double>(pattern[k]);
            keep(l, h, row);
          }
        }
    }
    for (const auto& spec : Net::Layout::tensors()) {
      double sum = 0;
      for (const auto v : net.tensor(spec.name)) sum += static_cast<double>(v) * static_cast<double>(v);
      m.tensor_norms.emplace_back(spec.name, std::sqrt(sum));
    }
    for (const auto& [name, batch] : subsets_) {
      const auto e = net.evaluate(batch);
      m.subset_loss.emplace_back(name, e.loss);
      m.subset_accuracy.emplace_back(name, e.accuracy);
    }
    measures_.push_back(std::move(m));
  }

  index_t frame_count() const { return static_cast<index_t>(measures_.size()); }
  // (frames, N, L, H, T): frame f, sample n, layer l, head h, key k at
  // (((f * N + n) * L + l) * H + h) * T + k; weight = byte / 255.
  const std::vector<std::uint8_t>& frames() const { return frames_; }
  const std::vector<ProgressMeasures>& measures() const { return measures_; }
  const TokenBatch& probe() const { return probe_; }

 private:
  TokenBatch probe_;
  std::vector<std::pair<std::string, TokenBatch>> subsets_;
  std::vector<std::string> names_;
  std::vector<std::uint8_t> frames_;
  std::vector<ProgressMeasures> measures_;
};

}  // namespace tinyattn
