// tinyattn/inspect/induction_heads.hpp — the scores that tell induction heads and previous-token heads
// apart, as in the induction-head literature (Elhage et al. 2021, Olsson et al. 2022).
//
// On sequences made of n random tokens repeated once (data/induction_task.hpp), for a query at position
// t of the repeated half (n <= t < 2n), with the pattern p = hook_pattern (N, H, T, T):
//   previous-token score  mean over samples and t of p[t, t - 1]       attends to the previous position
//   prefix-matching score mean over samples and t of p[t, t - n + 1]   attends to the token that followed
//                                                                       the current token's earlier copy
// An induction head (layer >= 1) has a high prefix-matching score and copies: the
//   copying score         sum of the eigenvalues of W_E W_V[h] W_O[h] W_U (V x V_out, real parts) over
//                         the sum of their absolute values: 1 when the head's OV circuit maps every
//                         token to itself, -1 when it suppresses it (needs V_out = V).
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "tinyattn/core/config.hpp"
#include "tinyattn/data/token_batch.hpp"

namespace tinyattn {

struct HeadScores {
  index_t layer = 0, head = 0;
  double previous_token = 0, prefix_matching = 0, copying = 0;
};

// The previous-token and prefix-matching scores of one head from its pattern (N, T, T) (one head's
// hook_pattern, row-major: [n][query][key]) on sequences of two copies of n = T / 2 tokens.
inline void attention_scores_of_repeats(const float* pattern, index_t samples, index_t T, double& previous_token,
                                        double& prefix_matching) {
  require(T >= 4 && T % 2 == 0, "attention_scores_of_repeats: the context must be two copies, even and >= 4; found ",
          T);
  require(samples >= 1, "attention_scores_of_repeats: no samples");
  const index_t n = T / 2;
  double previous = 0, prefix = 0;
  for (index_t s = 0; s < samples; ++s)
    for (index_t t = n; t < T; ++t) {
      const float* row = pattern + (static_cast<std::size_t>(s) * T + t) * T;
      previous += row[t - 1];
      prefix += row[t - n + 1];
    }
  const double count = static_cast<double>(samples) * n;
  previous_token = previous / count;
  prefix_matching = prefix / count;
}

// The copying score of an OV circuit given as its V x V matrix (row-major: input token, output logit).
inline double copying_score(const std::vector<double>& ov, index_t V) {
  require(ov.size() == static_cast<std::size_t>(V) * V, "copying_score: ", ov.size(), " values for a ", V, "x", V,
          " circuit");
  Eigen::MatrixXd m(V, V);
  for (index_t i = 0; i < V; ++i)
    for (index_t j = 0; j < V; ++j) m(i, j) = ov[static_cast<std::size_t>(i) * V + j];
  const Eigen::VectorXcd eigenvalues =
      Eigen::EigenSolver<Eigen::MatrixXd>(m, /*computeEigenvectors=*/false).eigenvalues();
  double real = 0, absolute = 0;
  for (Eigen::Index i = 0; i < eigenvalues.size(); ++i) {
    real += eigenvalues[i].real();
    absolute += std::abs(eigenvalues[i]);
  }
  return absolute > 0 ? real / absolute : 0.0;
}

// The full OV circuit of head h of `layer` through the direct path: W_E W_V[h] W_O[h] W_U (V x V_out),
// from a network's tensors (tied: W_U = W_E^T).
template <class Net>
std::vector<double> ov_circuit(const Net& net, index_t layer, index_t head) {
  constexpr index_t V = Net::vocab, V_out = Net::vocab_out, D = Net::d_model, dh = Net::head_dim;
  const std::string b = "blocks." + std::to_string(layer) + ".attn.";
  const auto w_e = net.tensor("embed.W_E"), w_v = net.tensor(b + "W_V"), w_o = net.tensor(b + "W_O");
  std::vector<typename Net::scalar_type> w_u;
  if constexpr (Net::Architecture::tied) {
    w_u.resize(static_cast<std::size_t>(D) * V_out);
    for (index_t v = 0; v < V_out; ++v)
      for (index_t d = 0; d < D; ++d)
        w_u[static_cast<std::size_t>(d) * V_out + v] = w_e[static_cast<std::size_t>(v) * D + d];
  } else {
    w_u = net.tensor("unembed.W_U");
  }
  // W_OV[h] = W_V[h] W_O[h]: (D, D)
  std::vector<double> w_ov(static_cast<std::size_t>(D) * D, 0.0);
  for (index_t i = 0; i < D; ++i)
    for (index_t e = 0; e < dh; ++e) {
      const double v = w_v[(static_cast<std::size_t>(head) * D + i) * dh + e];
      for (index_t j = 0; j < D; ++j)
        w_ov[static_cast<std::size_t>(i) * D + j] += v * w_o[(static_cast<std::size_t>(head) * dh + e) * D + j];
    }
  std::vector<double> out(static_cast<std::size_t>(V) * V_out, 0.0);
  std::vector<double> row(static_cast<std::size_t>(D));
  for (index_t t = 0; t < V; ++t) {
    std::fill(row.begin(), row.end(), 0.0);
    for (index_t i = 0; i < D; ++i) {
      const double x = w_e[static_cast<std::size_t>(t) * D + i];
      for (index_t j = 0; j < D; ++j) row[static_cast<std::size_t>(j)] += x * w_ov[static_cast<std::size_t>(i) * D + j];
    }
    for (index_t j = 0; j < D; ++j)
      for (index_t v = 0; v < V_out; ++v)
        out[static_cast<std::size_t>(t) * V_out + v] +=
            row[static_cast<std::size_t>(j)] * w_u[static_cast<std::size_t>(j) * V_out + v];
  }
  return out;
}

// Every head's scores on repeated sequences `batch` (two copies of T / 2 tokens each).
template <class Net>
std::vector<HeadScores> induction_head_scores(const Net& net, const TokenBatch& batch) {
  static_assert(Net::vocab == Net::vocab_out, "induction_head_scores: the copying score needs V_out = V");
  std::vector<std::string> names;
  for (index_t l = 0; l < Net::layers; ++l) names.push_back("blocks." + std::to_string(l) + ".attn.hook_pattern");
  const auto cache = net.inspect(batch, names);
  const index_t N = batch.size(), T = Net::context, H = Net::heads;
  std::vector<HeadScores> out;
  std::vector<float> one_head(static_cast<std::size_t>(N) * T * T);
  for (index_t l = 0; l < Net::layers; ++l) {
    const auto& pattern = cache[names[static_cast<std::size_t>(l)]].values;  // (N, H, T, T)
    for (index_t h = 0; h < H; ++h) {
      for (index_t s = 0; s < N; ++s)
        for (std::size_t i = 0; i < static_cast<std::size_t>(T) * T; ++i)
          one_head[static_cast<std::size_t>(s) * T * T + i] =
              static_cast<float>(pattern[(static_cast<std::size_t>(s) * H + h) * T * T + i]);
      HeadScores scores;
      scores.layer = l, scores.head = h;
      attention_scores_of_repeats(one_head.data(), N, T, scores.previous_token, scores.prefix_matching);
      scores.copying = copying_score(ov_circuit(net, l, h), Net::vocab);
      out.push_back(scores);
    }
  }
  return out;
}

}  // namespace tinyattn
