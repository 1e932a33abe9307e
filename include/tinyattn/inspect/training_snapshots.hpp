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
// on the fast path read the patterns off its QK tables: the last query's pattern is
// softmax_k(qk[h][row(query)][row(key k)] / sqrt(dh)), without a forward pass over the probe, from the
// QK circuit's rows of the queries the probe uses only (tinyattn::QueryRowCircuit), exponentiated once
// per key row rather than once per key of every sample; other models run inspect(). Tests hold the two
// against each other. A snapshot is taken often during a training run,
// so what does not change between snapshots is made once: the probe's rows, and the subsets'
// evaluations (model/repeated_evaluation.hpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tinyattn/data/token_batch.hpp"
#include "tinyattn/inspect/circuits.hpp"
#include "tinyattn/model/repeated_evaluation.hpp"

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
  // Whether the patterns are read off the QK circuit (see the top of this file) rather than inspect().
  static constexpr bool kPatternsFromCircuit = L == 1 && Net::has_table_engine;

  // `probe`: the samples whose attention is kept; `subsets`: named batches (with targets) whose loss
  // and accuracy are measured at every snapshot. Throws tinyattn::Error for a subset net.evaluate would
  // refuse.
  explicit TrainingSnapshots(TokenBatch probe, std::vector<std::pair<std::string, TokenBatch>> subsets = {})
      : probe_(std::move(probe)) {
    for (index_t l = 0; l < L; ++l) names_.push_back("blocks." + std::to_string(l) + ".attn.hook_pattern");
    for (const auto& [name, batch] : subsets) {
      subset_names_.push_back(name);
      subset_evaluations_.emplace_back(batch);
    }
    if constexpr (kPatternsFromCircuit) {
      index_probe_rows();
      query_circuit_.emplace(query_rows_);
    }
  }

  // Room for `frames` frames in all, so that the frames are not copied as they grow (a run that knows
  // how many snapshots it takes).
  void reserve(index_t frames) {
    frames_.reserve(static_cast<std::size_t>(frames) * frame_size());
    measures_.reserve(static_cast<std::size_t>(frames));
  }

  void take(const Net& net, std::int64_t epoch) {
    const index_t N = probe_.size();
    frames_.resize(frames_.size() + frame_size());
    std::uint8_t* const frame = frames_.data() + frames_.size() - frame_size();
    pattern_entropy_.resize(static_cast<std::size_t>(N) * L * H);
    // One head's pattern row of the last query of sample n, layer l: its bytes and its entropy. Each
    // sample writes only its own slots, so samples run in parallel with the same results.
    const auto keep = [&](index_t n, index_t l, index_t h, const double* row, EntropyTerms entropy) {
      const std::size_t slot = (static_cast<std::size_t>(n) * L + l) * H + h;
      std::uint8_t* out = frame + slot * T;
      for (index_t k = 0; k < T; ++k) {
        const double w = row[k] > 0 ? (row[k] < 1 ? row[k] : 1.0) : 0.0;  // NaN -> 0; comparisons, not libm calls
        out[k] = static_cast<std::uint8_t>(round_half_up(w * 255.0));
      }
      pattern_entropy_[slot] = entropy;
    };
    if constexpr (kPatternsFromCircuit) {
      index_key_rows(query_circuit_->compute(net));
#pragma omp parallel for schedule(static)
      for (index_t n = 0; n < N; ++n) {
        const index_t* keys = key_rows_.data() + static_cast<std::size_t>(n) * T;
        for (index_t h = 0; h < H; ++h) {
          const KeyRow* table = key_table(h, query_slot_[static_cast<std::size_t>(n)]);
          double row[T], sum = 0;
          for (index_t k = 0; k < T; ++k) sum += row[k] = table[keys[k]].weight;
          if (!(sum >= kSmallestSum)) {  // every key far below the best key row (or not finite)
            softmax_of_scores(table, keys, row);
            keep(n, 0, h, row, {1.0, entropy_of(row)});
            continue;
          }
          // p_k = w_k / sum and log p_k = shifted_k - log(sum), so the entropy -sum_k p_k log p_k is
          // log(sum) - sum_k p_k shifted_k, the log left for the mean (EntropyTerms).
          const double inverse = 1.0 / sum;
          double rest = 0;
          for (index_t k = 0; k < T; ++k) {
            row[k] *= inverse;
            rest -= row[k] * table[keys[k]].shifted;
          }
          keep(n, 0, h, row, {sum, rest});
        }
      }
    } else {
      const auto cache = net.inspect(probe_, names_);
#pragma omp parallel for schedule(static)
      for (index_t n = 0; n < N; ++n)
        for (index_t l = 0; l < L; ++l) {
          const auto& p = cache[names_[static_cast<std::size_t>(l)]].values;  // (N, H, T, T)
          for (index_t h = 0; h < H; ++h) {
            const auto* pattern = p.data() + ((static_cast<std::size_t>(n) * H + h) * T + (T - 1)) * T;  // query T - 1
            double row[T];
            for (index_t k = 0; k < T; ++k) row[k] = static_cast<double>(pattern[k]);
            keep(n, l, h, row, {1.0, entropy_of(row)});
          }
        }
    }
    ProgressMeasures m;
    m.epoch = epoch;
    // The mean entropy summed in sample order, one sample after another: the same bits for any thread
    // count. The sum of the samples' log(sum of weights) is the log of their product: one log a head.
    m.head_entropy.assign(static_cast<std::size_t>(L) * H, 0.0);
    for (std::size_t lh = 0; lh < m.head_entropy.size(); ++lh) {
      double rest = 0, product = 1;
      int exponent = 0;
      for (index_t n = 0; n < N; ++n) {
        const EntropyTerms& e = pattern_entropy_[static_cast<std::size_t>(n) * L * H + lh];
        rest += e.rest;
        product *= e.sum_of_weights;  // >= kSmallestSum times >= 2^-200: no underflow
        if (!(product >= 0x1p-200 && product <= 0x1p200)) {
          int step = 0;
          product = std::frexp(product, &step);
          exponent += step;
        }
      }
      m.head_entropy[lh] = (rest + std::log(product) + exponent * std::log(2.0)) / N;
    }
    // Every tensor's norm from one download of the parameters.
    const std::vector<typename Net::scalar_type> parameters = net.parameters();
    for (const auto& spec : Net::Layout::tensors()) {
      double sum = 0;
      for (std::size_t i = spec.offset; i < spec.offset + spec.count(); ++i)
        sum += static_cast<double>(parameters[i]) * static_cast<double>(parameters[i]);
      m.tensor_norms.emplace_back(spec.name, std::sqrt(sum));
    }
    for (std::size_t s = 0; s < subset_names_.size(); ++s) {
      const Evaluation e = subset_evaluations_[s].evaluate(net);
      m.subset_loss.emplace_back(subset_names_[s], e.loss);
      m.subset_accuracy.emplace_back(subset_names_[s], e.accuracy);
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
  // std::lround(x) for x >= 0 (halves away from zero), without its library call: x - floor(x) is exact.
  static int round_half_up(double x) {
    const double whole = std::floor(x);
    return static_cast<int>(whole) + (x - whole >= 0.5 ? 1 : 0);
  }

  // A pattern row's entropy as log(sum_of_weights) + rest (the fast path's form; elsewhere the sum is 1).
  struct EntropyTerms {
    double sum_of_weights = 1, rest = 0;
  };

  // -sum_k w_k log w_k of one pattern row.
  static double entropy_of(const double* row) {
    double entropy = 0;
    for (index_t k = 0; k < T; ++k)
      if (row[k] > 0) entropy -= row[k] * std::log(row[k]);
    return entropy;
  }

  // A key row's scaled score against one query row and head, shifted by the best of all key rows against
  // them (shifted <= 0), and its exponential. A sample's pattern is the softmax of its keys' scaled
  // scores, which one common shift does not change: weight_k / sum_j weight_j, with a table lookup per
  // key in place of an exp call per key and sample.
  struct KeyRow {
    double shifted = 0, weight = 0;
  };
  // Below this sum of a sample's key weights the table's exponentials may have lost precision (all its
  // keys hundreds of units below the best key row); those rows are computed from the scores directly.
  // (2^-800 also keeps the running product of the sums, renormalised below 2^-200, from underflowing.)
  static constexpr double kSmallestSum = 0x1p-800;

  const KeyRow* key_table(index_t h, index_t query_slot) const {
    return key_table_.data() +
           (static_cast<std::size_t>(h) * query_rows_.size() + static_cast<std::size_t>(query_slot)) * Net::vocab * T;
  }

  std::size_t frame_size() const { return static_cast<std::size_t>(L) * probe_.size() * H * T; }

  // key_table_ from the QK circuit's rows of the probe's query rows.
  void index_key_rows(const QueryRowScores<typename Net::scalar_type>& qk) {
    const index_t Q = static_cast<index_t>(query_rows_.size()), R = Net::vocab * T;
    const double scale = 1.0 / std::sqrt(static_cast<double>(Net::head_dim));
    key_table_.resize(static_cast<std::size_t>(H) * Q * R);
    for (index_t h = 0; h < H; ++h)
      for (index_t i = 0; i < Q; ++i) {
        const auto* scores = qk.scores(h, i);
        KeyRow* table = key_table_.data() + (static_cast<std::size_t>(h) * Q + i) * R;
        double best = -INFINITY;
        for (index_t r = 0; r < R; ++r)
          best = std::fmax(best, table[r].shifted = static_cast<double>(scores[r]) * scale);
        for (index_t r = 0; r < R; ++r) {
          table[r].shifted -= best;
          table[r].weight = std::exp(table[r].shifted);
        }
      }
  }

  // The softmax of a sample's keys from their shifted scores, shifted again by the sample's best key.
  static void softmax_of_scores(const KeyRow* table, const index_t* keys, double* row) {
    double top = -INFINITY, sum = 0;
    for (index_t k = 0; k < T; ++k) top = std::fmax(top, table[keys[k]].shifted);
    for (index_t k = 0; k < T; ++k) sum += row[k] = std::exp(table[keys[k]].shifted - top);
    for (index_t k = 0; k < T; ++k) row[k] /= sum;
  }

  // The QK circuit's rows each probe sample reads: its last token's row as the query (the distinct
  // ones in query_rows_, sample n's at query_slot_[n]) and its T rows as keys.
  void index_probe_rows() {
    const index_t N = probe_.size(), V = Net::vocab;
    std::vector<index_t> slot_of_row(static_cast<std::size_t>(V) * T, -1);
    query_slot_.resize(static_cast<std::size_t>(N));
    key_rows_.resize(static_cast<std::size_t>(N) * T);
    for (index_t n = 0; n < N; ++n) {
      const index_t* tokens = probe_.sample(n);
      for (index_t k = 0; k < T; ++k) key_rows_[static_cast<std::size_t>(n) * T + k] = k * V + tokens[k];
      index_t& slot = slot_of_row[static_cast<std::size_t>(key_rows_[static_cast<std::size_t>(n) * T + T - 1])];
      if (slot < 0) {
        slot = static_cast<index_t>(query_rows_.size());
        query_rows_.push_back(key_rows_[static_cast<std::size_t>(n) * T + T - 1]);
      }
      query_slot_[static_cast<std::size_t>(n)] = slot;
    }
  }

  TokenBatch probe_;
  std::vector<std::string> names_;
  std::vector<std::string> subset_names_;
  std::vector<RepeatedEvaluation<Net>> subset_evaluations_;
  std::vector<index_t> query_rows_, query_slot_, key_rows_;
  std::optional<QueryRowCircuit<Net>> query_circuit_;  // the QK circuit's rows of query_rows_
  std::vector<KeyRow> key_table_;                      // (H, query rows, V * T): the last take()'s
  std::vector<EntropyTerms> pattern_entropy_;          // (N, L, H): the last take()'s, by sample
  std::vector<std::uint8_t> frames_;
  std::vector<ProgressMeasures> measures_;
};

}  // namespace tinyattn
