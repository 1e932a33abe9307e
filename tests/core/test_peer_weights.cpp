// Weights that the peer wrote, and weights that the library wrote and the peer evaluated: the library's
// evaluation of each file equals the peer's `--eval` of it (tests/data/peer_weights/, README.md there):
// loss over the whole data, the training part and the test part to a relative 1e-5 (float32 summation
// order), the numbers of scored positions and of wrong predictions exactly.
#include "../support/test_support.hpp"

#include <nlohmann/json.hpp>

#include <fstream>

#include "tinyattn/io/weights.hpp"

namespace tinyattn::test {
namespace {

nlohmann::json peer_eval(const std::string& name) {
  std::ifstream in(data_path("peer_weights/" + name + ".eval.json"));
  REQUIRE(in.good());
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty() && line[0] == '{') last = line;  // the peer may print warnings before its JSON line
  return nlohmann::json::parse(last);
}

void check_part(const Evaluation& ours, const nlohmann::json& theirs, const std::string& part) {
  INFO(part);
  CHECK(ours.samples == theirs[part + "scored"].get<std::int64_t>());
  CHECK(ours.loss == doctest::Approx(theirs[part + "loss"].get<double>()).epsilon(1e-5));
  const auto wrong = ours.samples - ours.correct;
  const auto their_wrong = static_cast<std::int64_t>(
      std::llround((1.0 - theirs[part + "accuracy"].get<double>()) * theirs[part + "scored"].get<double>()));
  CHECK(wrong == their_wrong);
}

template <class Net, class Task>
void check_file(const std::string& name, const Task& task) {
  INFO(name);
  Net net;
  io::load_weights(net, data_path("peer_weights/" + name + ".safetensors"));
  const nlohmann::json theirs = peer_eval(name);
  check_part(net.evaluate(task.all()), theirs, "");
  check_part(net.evaluate(task.train()), theirs, "train_");
  check_part(net.evaluate(task.test()), theirs, "test_");
}

using Grokking = Transformer<Shape<114, 128, 4, 3>, Architecture<mlp<512>, untied_unembedding, output_vocab<113>>>;
using Induction =
    Transformer<Shape<64, 64, 4, 32>,
                Architecture<n_layers<2>, causal_mask, trainable_biases, untied_unembedding, loss_at_every_position>>;
using MinMax = AttentionNetwork<ReferenceShape>;

TEST_CASE("weights the peer wrote: the library evaluates them as the peer does") {
  check_file<Grokking>("grokking_seed1", ModularAdditionTask(113, 0.3, 598));
  check_file<Induction>("induction_seed2", InductionTask(64, 32, 4096, 1024, 598));
  check_file<MinMax>("minmax_tl_seed3", MinMaxTask(128, 3));
  check_file<MinMax>("minmax_notebook_names_seed3", MinMaxTask(128, 3));
}

TEST_CASE("weights the library wrote: the peer's evaluation of them equals the library's") {
  check_file<Grokking>("library_grokking_seed7", ModularAdditionTask(113, 0.3, 598));
  check_file<Induction>("library_induction_seed8", InductionTask(64, 32, 4096, 1024, 598));
  check_file<MinMax>("library_minmax_tl_seed9", MinMaxTask(128, 9));
  check_file<MinMax>("library_minmax_notebook_names_seed9", MinMaxTask(128, 9));
}

TEST_CASE("a weights file of another configuration is refused, naming the difference") {
  Induction wrong_depth;
  CHECK_THROWS_WITH_AS(io::load_weights(wrong_depth, data_path("peer_weights/grokking_seed1.safetensors")),
                       doctest::Contains("the file's configuration has d_vocab = 114, this model has 64"),
                       io::FormatError);
  using GeluGrokking = Transformer<Shape<114, 128, 4, 3>,
                                   Architecture<mlp<512, Activation::gelu>, untied_unembedding, output_vocab<113>>>;
  GeluGrokking gelu;
  CHECK_THROWS_WITH_AS(io::load_weights(gelu, data_path("peer_weights/grokking_seed1.safetensors")),
                       doctest::Contains("act_fn = relu, this model has gelu"), io::FormatError);
  using CausalGrokking =
      Transformer<Shape<114, 128, 4, 3>, Architecture<causal_mask, mlp<512>, untied_unembedding, output_vocab<113>>>;
  CausalGrokking causal;
  CHECK_THROWS_WITH_AS(io::load_weights(causal, data_path("peer_weights/grokking_seed1.safetensors")),
                       doctest::Contains("attn_mask = none, this model has causal"), io::FormatError);
  MinMax minmax;
  CHECK_THROWS_WITH_AS(io::load_weights(minmax, data_path("peer_weights/induction_seed2.safetensors")),
                       doctest::Contains("this model has"), io::FormatError);
}

}  // namespace
}  // namespace tinyattn::test
