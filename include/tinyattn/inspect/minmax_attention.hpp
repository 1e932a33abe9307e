// tinyattn/inspect/minmax_attention.hpp — what the notebook plots: for max and for min, the attention
// from the '=' query to the keys A, op and B, for every pair of operands (a, b).
//
// One head typically learns to pick the larger (or smaller) operand — a diagonal boundary at a = b in
// its A and B maps — while the other attends to the op token.
#pragma once

#include <vector>

#include "tinyattn/data/minmax_task.hpp"
#include "tinyattn/model/activation_cache.hpp"

namespace tinyattn {

struct MinMaxAttentionMaps {
  static constexpr index_t keys = 3;  // A, op, B
  index_t heads = 0, n = 0;           // n = operands per side (max_n)
  // Indexed by MinMaxOp: (heads, keys, n, n), element [h][key][a][b]: row y = a, column x = b.
  std::vector<float> weights[2];  // softmax(scores / sqrt(dh)), in [0, 1]
  std::vector<float> scores[2];   // q . k before scaling, as the notebook plots them

  std::size_t index(index_t h, index_t key, index_t a, index_t b) const {
    return ((static_cast<std::size_t>(h) * keys + key) * n + a) * n + b;
  }
  float weight(MinMaxOp op, index_t h, index_t key, index_t a, index_t b) const {
    return weights[static_cast<int>(op)][index(h, key, a, b)];
  }
  float score(MinMaxOp op, index_t h, index_t key, index_t a, index_t b) const {
    return scores[static_cast<int>(op)][index(h, key, a, b)];
  }
};

// Runs the full forward on all 2 n^2 inputs of the task and gathers the '=' query's attention.
// requires: a network of context 4 whose vocabulary matches the task's (checked).
template <class Net>
MinMaxAttentionMaps minmax_attention_maps(const Net& net, const MinMaxTask& task) {
  static_assert(Net::context == MinMaxTask::context,
                "minmax_attention_maps: the network's context must be 4 (a op b =)");
  require(task.vocab() == Net::vocab, "minmax_attention_maps: the task's vocabulary is ", task.vocab(),
          ", the network's is ", Net::vocab);
  const auto cache = net.inspect(task.all(), cache_scores | cache_pattern);
  MinMaxAttentionMaps maps;
  maps.heads = Net::heads;
  maps.n = task.max_n();
  const std::size_t per_op = static_cast<std::size_t>(maps.heads) * MinMaxAttentionMaps::keys * maps.n * maps.n;
  for (int op = 0; op < 2; ++op) {
    maps.weights[op].resize(per_op);
    maps.scores[op].resize(per_op);
  }
  constexpr index_t query = MinMaxTask::context - 1;  // '='
  for (index_t i = 0; i < task.size(); ++i) {
    const MinMaxSample s = task.sample(i);
    const int op = static_cast<int>(s.op);
    for (index_t h = 0; h < maps.heads; ++h) {
      for (index_t key = 0; key < MinMaxAttentionMaps::keys; ++key) {
        maps.weights[op][maps.index(h, key, s.a, s.b)] = static_cast<float>(cache.weight(i, h, query, key));
        maps.scores[op][maps.index(h, key, s.a, s.b)] = static_cast<float>(cache.score(i, h, query, key));
      }
    }
  }
  return maps;
}

}  // namespace tinyattn
