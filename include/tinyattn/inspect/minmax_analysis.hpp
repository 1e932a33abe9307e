// tinyattn/inspect/minmax_analysis.hpp — what the min/max model does, and where it fails, over all
// 2 max_n^2 inputs: which operand each head attends to, what breaks when a head is ablated, and the margin
// of every answer.
#pragma once

#include <string>
#include <vector>

#include "tinyattn/data/minmax_task.hpp"
#include "tinyattn/model/interventions.hpp"
#include "tinyattn/model/transformer.hpp"

namespace tinyattn {

// Accuracy on the max inputs and on the min inputs (every one of each), with some heads ablated.
struct MinMaxAblationRow {
  std::string what;             // "none", "zero head 0", "mean head 1", "zero heads 0, 1", ...
  double accuracy[2] = {0, 0};  // indexed by MinMaxOp
};

// Every single head and all heads together, zero- and mean-ablated (mean: each head's hook_z averaged over
// all inputs of the task, per position), and the intact model first.
template <class Net>
std::vector<MinMaxAblationRow> minmax_ablation_table(const Net& net, const MinMaxTask& task) {
  using Scalar = typename Net::scalar_type;
  constexpr index_t H = Net::heads;
  const index_t per_op = task.max_n() * task.max_n();
  std::vector<index_t> ops[2];
  for (index_t i = 0; i < task.size(); ++i) ops[i / per_op].push_back(i);
  const TokenBatch batches[2] = {task.batch(ops[0]), task.batch(ops[1])};
  const auto all_z = net.inspect(task.all(), {"blocks.0.attn.hook_z"});
  std::vector<std::vector<Scalar>> means;
  for (index_t h = 0; h < H; ++h) means.push_back(head_mean(all_z, 0, h));
  std::vector<MinMaxAblationRow> rows;
  const auto run = [&](const std::string& what, const Interventions<Scalar>& iv) {
    MinMaxAblationRow row;
    row.what = what;
    for (int op = 0; op < 2; ++op) row.accuracy[op] = net.evaluate(batches[op], iv).accuracy;
    rows.push_back(row);
  };
  run("none", {});
  for (const char* kind : {"zero", "mean"}) {
    const bool zero = kind[0] == 'z';
    for (index_t h = 0; h < H; ++h) {
      Interventions<Scalar> iv;
      if (zero)
        iv.zero_ablate(0, h);
      else
        iv.mean_ablate(0, h, means[static_cast<std::size_t>(h)]);
      run(std::string(kind) + " head " + std::to_string(h), iv);
    }
    if (H > 1) {
      Interventions<Scalar> iv;
      std::string heads;
      for (index_t h = 0; h < H; ++h) {
        if (zero)
          iv.zero_ablate(0, h);
        else
          iv.mean_ablate(0, h, means[static_cast<std::size_t>(h)]);
        heads += (h ? ", " : "") + std::to_string(h);
      }
      run(std::string(kind) + " heads " + heads, iv);
    }
  }
  return rows;
}

// The margin of every answer (the correct logit minus the best other) and the '=' query's attention.
struct MinMaxAtlas {
  index_t n = 0, heads = 0;
  std::vector<float> margin[2];     // (n, n) per op: [a][b]
  std::vector<float> attention[2];  // (heads, 3, n, n) per op: to A, op, B
  struct Failure {
    MinMaxOp op;
    index_t a, b, answer, expected;
    float margin;
    std::vector<float> attention;  // (heads, 3)
  };
  std::vector<Failure> failures;  // the wrong inputs: margin <= 0 and the argmax is not the answer
  index_t wrong(MinMaxOp op) const {
    index_t count = 0;
    for (const Failure& f : failures) count += f.op == op;
    return count;
  }
};

template <class Net>
MinMaxAtlas minmax_failure_atlas(const Net& net, const MinMaxTask& task) {
  constexpr index_t H = Net::heads, V = Net::vocab_out, query = MinMaxTask::context - 1;
  const index_t n = task.max_n();
  const TokenBatch all = task.all();
  const auto cache = net.inspect(all, {"blocks.0.attn.hook_pattern", "logits"});
  MinMaxAtlas atlas;
  atlas.n = n, atlas.heads = H;
  for (int op = 0; op < 2; ++op) {
    atlas.margin[op].assign(static_cast<std::size_t>(n) * n, 0.0f);
    atlas.attention[op].assign(static_cast<std::size_t>(H) * 3 * n * n, 0.0f);
  }
  for (index_t i = 0; i < task.size(); ++i) {
    const MinMaxSample s = task.sample(i);
    const int op = static_cast<int>(s.op);
    const auto* logits = cache.logits_at(i, query);
    index_t best = 0, best_other = s.target == 0 ? 1 : 0;
    for (index_t c = 0; c < V; ++c) {
      if (logits[c] > logits[best]) best = c;
      if (c != s.target && logits[c] > logits[best_other]) best_other = c;
    }
    const float margin = static_cast<float>(logits[s.target] - logits[best_other]);
    const std::size_t cell = static_cast<std::size_t>(s.a) * n + s.b;
    atlas.margin[op][cell] = margin;
    std::vector<float> paid(static_cast<std::size_t>(H) * 3);
    for (index_t h = 0; h < H; ++h)
      for (index_t k = 0; k < 3; ++k) {
        const float w = static_cast<float>(cache.weight(i, h, query, k));
        atlas.attention[op][(static_cast<std::size_t>(h) * 3 + k) * n * n + cell] = w;
        paid[static_cast<std::size_t>(h) * 3 + k] = w;
      }
    if (best != s.target) atlas.failures.push_back({s.op, s.a, s.b, best, s.target, margin, paid});
  }
  return atlas;
}

// How often head h puts more weight on the operand that is the answer than on the other one (over
// the inputs with a != b), and its mean weight on the op token, per op.
struct MinMaxHeadRole {
  index_t head = 0;
  double answer_operand[2] = {0, 0};  // fraction of inputs (a != b) with w(answer) > w(other operand)
  double op_token[2] = {0, 0};        // mean weight on the op token
};

inline std::vector<MinMaxHeadRole> minmax_head_roles(const MinMaxAtlas& atlas) {
  const index_t n = atlas.n;
  std::vector<MinMaxHeadRole> roles;
  for (index_t h = 0; h < atlas.heads; ++h) {
    MinMaxHeadRole role;
    role.head = h;
    for (int op = 0; op < 2; ++op) {
      const float* w = atlas.attention[op].data() + static_cast<std::size_t>(h) * 3 * n * n;
      double hits = 0, pairs = 0, op_weight = 0;
      for (index_t a = 0; a < n; ++a)
        for (index_t b = 0; b < n; ++b) {
          const std::size_t cell = static_cast<std::size_t>(a) * n + b;
          op_weight += w[static_cast<std::size_t>(n) * n + cell];
          if (a == b) continue;
          const bool a_is_answer = op == 0 ? a > b : a < b;
          const float to_a = w[cell], to_b = w[2 * static_cast<std::size_t>(n) * n + cell];
          hits += (a_is_answer ? to_a > to_b : to_b > to_a) ? 1 : 0;
          pairs += 1;
        }
      role.answer_operand[op] = pairs ? hits / pairs : 0;
      role.op_token[op] = op_weight / (static_cast<double>(n) * n);
    }
    roles.push_back(role);
  }
  return roles;
}

}  // namespace tinyattn
