// induction — a two-layer attention-only transformer learns to complete repeated random sequences:
// a previous-token head in layer 0 and an induction head in layer 1 form a circuit that copies the token
// which followed the current token's earlier occurrence (Elhage et al. 2021; Olsson et al. 2022).
//
//   induction train   [--epochs N] [--eval-every K] [--seed S] [--out DIR] ...   (see --help)
//   induction eval    --weights FILE [--json]
//   induction plot    --weights FILE [--out DIR]
//   induction predict --weights FILE T0 T1 ... T15      (16 tokens, repeated; or all 32)
//
// The model and data are the PyTorch peer's --preset induction: V 64, T 32 (16 random tokens, then the
// same 16 again; targets on the repeated half), 4,096 training and 1,024 test sequences (data seed 598);
// 2 layers, 4 heads, D 64, attention only, causal, biases, untied unembedding; full-batch AdamW lr 1e-3,
// weight decay 0.01, betas (0.9, 0.99).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "experiment_program.hpp"
#include "tinyattn/inspect/induction_heads.hpp"
#include "tinyattn/io/npy.hpp"
#include "tinyattn/plot/heatmap_grid.hpp"
#include "tinyattn/plot/line_chart.hpp"

namespace induction {

using programs::Arguments;
using programs::CurveRow;
using programs::UsageError;
using tinyattn::index_t;

constexpr index_t kV = 64, kT = 32;

struct Experiment {
  static constexpr const char* name = "induction";
  static constexpr const char* title = "induction heads (repeated random sequences)";
  using Net = tinyattn::Transformer<
      tinyattn::Shape<kV, 64, 4, kT>,
      tinyattn::Architecture<tinyattn::n_layers<2>, tinyattn::causal_mask, tinyattn::trainable_biases,
                             tinyattn::untied_unembedding, tinyattn::loss_at_every_position>>;

  static programs::TrainSettings defaults() {
    programs::TrainSettings s;
    s.epochs = 500;
    s.eval_every = 5;
    s.adamw = tinyattn::AdamWConfig{1e-3, 0.01, 0.9, 0.99, 1e-8};
    return s;
  }
  static std::set<std::string> data_flags() { return {"--data-seed", "--samples", "--test-samples"}; }

  static std::string usage() {
    return R"(induction — two attention layers learn to complete repeated random sequences with induction heads

usage:
  induction train   [--epochs N] [--eval-every K] [--seed S] [--lr X] [--weight-decay X] [--beta1 X] [--beta2 X]
                    [--batch-size B] [--data-seed S] [--samples N] [--test-samples N] [--out DIR] [--no-plot]
                    [--checkpoint-every N] [--resume DIR] [--threads N]
  induction eval    --weights FILE [--json] [--data-seed S] [--samples N] [--test-samples N]
  induction plot    --weights FILE [--out DIR]
  induction predict --weights FILE T0 ... T15    16 tokens in [0, 64), repeated (or all 32 tokens)
  induction --help | --version

train (defaults: the peer's --preset induction):
  --epochs N            epochs (500; the test accuracy jumps between epochs ~150 and ~250)
  --eval-every K        evaluate the test set every K epochs (5); the last epoch always
  --seed S              initial weights (0)
  --lr, --weight-decay, --beta1, --beta2   AdamW (1e-3, 0.01, 0.9, 0.99; eps 1e-8)
  --batch-size B        minibatches of B, reshuffled every epoch (0: full batch, the default)
  --data-seed S         the sequences (598), as the peer's random.Random(S).randrange
  --samples N, --test-samples N   training and test sequences (4096, 1024)
  --out DIR             where the files go (induction-out)
  --no-plot             no PNG figures (the .npy and .csv files are still written)
  --checkpoint-every N  DIR/checkpoint.safetensors every N epochs; --resume DIR continues bit-identically
  --threads N           CPU threads (default: all cores)

files in DIR: weights.safetensors (TransformerLens names), curves.csv/png, loss_per_position.csv/png (test
loss at each position of the repeated half), attention.npy/png (every head of both layers on one test
sequence: the previous-token stripe and the induction stripe), heads.csv and heads.md (each head's
previous-token, prefix-matching and copying scores, naming the previous-token and induction heads).
)";
  }

  Experiment(const Arguments& args, const tinyattn::io::Metadata* saved) {
    const auto from_saved = [&](const char* key, double fallback) {
      if (!saved || !saved->count(key)) return fallback;
      return programs::saved_number(*saved, key, "the weights' metadata");
    };
    data_seed = static_cast<std::uint64_t>(args.integer("--data-seed", 0, std::numeric_limits<std::int64_t>::max())
                                               .value_or(static_cast<std::int64_t>(from_saved("data_seed", 598))));
    samples = static_cast<index_t>(
        args.integer("--samples", 1, 1'000'000).value_or(static_cast<std::int64_t>(from_saved("samples", 4096))));
    test_samples = static_cast<index_t>(args.integer("--test-samples", 1, 1'000'000)
                                            .value_or(static_cast<std::int64_t>(from_saved("test_samples", 1024))));
    task = tinyattn::InductionTask(kV, kT, samples, test_samples, data_seed);
  }

  tinyattn::TokenBatch train() const { return task.train(); }
  tinyattn::TokenBatch test() const { return task.test(); }
  tinyattn::io::Metadata metadata() const {
    return {{"data_seed", std::to_string(data_seed)},
            {"samples", std::to_string(samples)},
            {"test_samples", std::to_string(test_samples)}};
  }

  bool figures(const Net& net, const std::vector<CurveRow>&, const std::string& dir, bool plot,
               std::vector<std::string>& files) const {
    namespace plt = tinyattn::plot;
    constexpr index_t L = Net::layers, H = Net::heads;
    const tinyattn::TokenBatch test_set = task.test();
    // Test loss per position (the repeated half is scored).
    const auto cache = net.inspect(test_set, {"logits"});
    const auto& logits = cache["logits"].values;  // (N, T, V)
    std::vector<double> loss(kT, 0.0);
    std::vector<std::int64_t> count(kT, 0);
    for (index_t s = 0; s < test_set.size(); ++s)
      for (index_t t = 0; t < kT; ++t) {
        const index_t target = test_set.target(s, t);
        if (target < 0) continue;
        const float* l = logits.data() + (static_cast<std::size_t>(s) * kT + t) * kV;
        const double top = *std::max_element(l, l + kV);
        double sum = 0;
        for (index_t c = 0; c < kV; ++c) sum += std::exp(l[c] - top);
        loss[static_cast<std::size_t>(t)] += std::log(sum) + top - l[target];
        ++count[static_cast<std::size_t>(t)];
      }
    std::string csv = "position,loss,scored\n";
    plt::LineSeries series{"test loss", {}, {}};
    for (index_t t = 0; t < kT; ++t) {
      const auto n = count[static_cast<std::size_t>(t)];
      const double mean = n ? loss[static_cast<std::size_t>(t)] / static_cast<double>(n) : std::nan("");
      csv += std::to_string(t) + "," + (n ? programs::number_text(mean) : std::string("nan")) + "," +
             std::to_string(n) + "\n";
      series.x.push_back(t), series.y.push_back(mean);
    }
    tinyattn::io::write_file_atomically(programs::join(dir, "loss_per_position.csv"), csv);
    files.push_back("loss_per_position.csv");
    // Every head's pattern on the first test sequence: (L, H, T, T), [l][h][query][key].
    std::vector<std::string> names;
    for (index_t l = 0; l < L; ++l) names.push_back("blocks." + std::to_string(l) + ".attn.hook_pattern");
    const auto one = net.inspect(task.rows(samples, 1), names);
    std::vector<float> attention;
    for (index_t l = 0; l < L; ++l) {
      const auto& p = one[names[static_cast<std::size_t>(l)]].values;  // (1, H, T, T)
      attention.insert(attention.end(), p.begin(), p.end());
    }
    tinyattn::io::write_npy(programs::join(dir, "attention.npy"), attention, {L, H, kT, kT});
    files.push_back("attention.npy");
    // Each head's scores over the test sequences.
    const std::vector<tinyattn::HeadScores> scores = tinyattn::induction_head_scores(net, test_set);
    const tinyattn::HeadScores* previous = nullptr;
    const tinyattn::HeadScores* induction = nullptr;
    for (const auto& s : scores) {
      if (s.layer == 0 && (!previous || s.previous_token > previous->previous_token)) previous = &s;
      if (s.layer == L - 1 && (!induction || s.prefix_matching > induction->prefix_matching)) induction = &s;
    }
    const auto role = [&](const tinyattn::HeadScores& s) -> std::string {
      if (&s == previous && s.previous_token >= 0.3) return "previous-token head";
      if (&s == induction && s.prefix_matching >= 0.3) return "induction head";
      return "";
    };
    std::string table = "layer,head,previous_token,prefix_matching,copying,role\n";
    std::string md =
        "| layer | head | previous-token score | prefix-matching score | copying score | role |\n"
        "| --- | --- | --- | --- | --- | --- |\n";
    std::printf("head scores on the %d test sequences:\n  layer head  previous-token  prefix-matching  copying\n",
                test_set.size());
    for (const auto& s : scores) {
      char line[160];
      std::snprintf(line, sizeof line, "%d,%d,%.4f,%.4f,%.4f,%s\n", s.layer, s.head, s.previous_token,
                    s.prefix_matching, s.copying, role(s).c_str());
      table += line;
      std::snprintf(line, sizeof line, "| %d | %d | %.3f | %.3f | %.3f | %s |\n", s.layer, s.head, s.previous_token,
                    s.prefix_matching, s.copying, role(s).c_str());
      md += line;
      std::printf("  %5d %4d  %14.3f  %15.3f  %7.3f  %s\n", s.layer, s.head, s.previous_token, s.prefix_matching,
                  s.copying, role(s).c_str());
    }
    md +=
        "\nPrevious-token score: mean attention from a query in the repeated half to the position before it. "
        "Prefix-matching score: mean attention to the position after the current token's earlier copy (the "
        "induction pattern). Copying score: (sum of the eigenvalues' real parts) / (sum of their absolute values) of "
        "the head's direct OV circuit W_E W_V W_O W_U; 1 means the head copies the token it attends to. A role is "
        "named when the head is its layer's best at the score and the score is at least 0.3.\n";
    tinyattn::io::write_file_atomically(programs::join(dir, "heads.csv"), table);
    tinyattn::io::write_file_atomically(programs::join(dir, "heads.md"), md);
    files.push_back("heads.csv");
    files.push_back("heads.md");
    if (!plot) return true;
    if (!plt::gnuplot_available()) return false;

    plt::LineChart chart;
    chart.title = "test loss per position: it drops where the repeat begins";
    chart.x_label = "position (the repeated half starts at 16)";
    chart.y_label = "cross-entropy";
    chart.series.push_back(series);
    plt::write_line_chart_png(chart, programs::join(dir, "loss_per_position.png"));
    files.push_back("loss_per_position.png");

    plt::HeatmapGrid grid;
    grid.title = "attention patterns on one test sequence (y: query position, x: key position)";
    grid.rows = L, grid.cols = H, grid.ny = kT, grid.nx = kT;
    grid.values.resize(attention.size());
    // The heatmap's y axis points up; put query 0 at the top, as attention patterns are usually drawn.
    for (index_t c = 0; c < L * H; ++c)
      for (index_t q = 0; q < kT; ++q)
        for (index_t k = 0; k < kT; ++k)
          grid.values[(static_cast<std::size_t>(c) * kT + (kT - 1 - q)) * kT + k] =
              attention[(static_cast<std::size_t>(c) * kT + q) * kT + k];
    for (index_t l = 0; l < L; ++l) grid.row_labels.push_back("layer " + std::to_string(l));
    for (index_t h = 0; h < H; ++h) grid.col_labels.push_back("head " + std::to_string(h));
    grid.x_label = "key";
    grid.y_label = "31 - query";
    plt::PlotStyle style;
    style.cell_px = 200;
    plt::write_heatmap_grid_png(grid, programs::join(dir, "attention.png"), style);
    files.push_back("attention.png");
    return true;
  }

  int predict(const Net& net, const std::vector<std::string>& words) const {
    if (words.size() != kT / 2 && words.size() != kT)
      throw UsageError("predict needs 16 tokens (repeated to 32) or 32 tokens, each in [0, 64); found " +
                       std::to_string(words.size()));
    tinyattn::TokenBatch batch;
    batch.context = kT;
    for (std::size_t i = 0; i < words.size(); ++i)
      batch.tokens.push_back(
          static_cast<index_t>(Arguments::parse_integer(words[i], "token " + std::to_string(i), 0, kV - 1)));
    if (words.size() == kT / 2) batch.tokens.insert(batch.tokens.end(), batch.tokens.begin(), batch.tokens.end());
    const auto cache = net.inspect(batch, {"logits"});
    std::printf("position  token  next (predicted)  next (in the sequence)\n");
    index_t right = 0, scored = 0;
    for (index_t t = 0; t < kT; ++t) {
      const float* l = cache.logits_at(0, t);
      const index_t best = static_cast<index_t>(std::max_element(l, l + kV) - l);
      const bool has_next = t + 1 < kT;
      const index_t next = has_next ? batch.tokens[static_cast<std::size_t>(t + 1)] : -1;
      const bool repeated = t >= kT / 2 && has_next;
      if (repeated) ++scored, right += best == next;
      std::printf("%8d  %5d  %16d  %s%s\n", t, batch.tokens[static_cast<std::size_t>(t)], best,
                  has_next ? std::to_string(next).c_str() : "-",
                  repeated ? (best == next ? "  right" : "  wrong") : "");
    }
    std::printf("repeated half: %d of %d next tokens right\n", right, scored);
    return 0;
  }

  std::uint64_t data_seed = 598;
  index_t samples = 4096, test_samples = 1024;
  tinyattn::InductionTask task;
};

}  // namespace induction

int main(int argc, char** argv) { return programs::run_program<induction::Experiment>(argc, argv); }
