// Tests of tinyattn/io/weights.hpp: weights in the notebook's state_dict format (round trip, files
// written by PyTorch, every way a file can fail to fit the network) and checkpoints that resume a run
// bit-identically.
#include "../support/scratch_directory.hpp"
#include <doctest/doctest.h>

#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tinyattn/io/safetensors.hpp"
#include "tinyattn/io/weights.hpp"
#include "tinyattn/tinyattn.hpp"

namespace fs = std::filesystem;

namespace tinyattn::test {
namespace {

struct Scratch : tinyattn::test::ScratchDirectory {
  Scratch() : ScratchDirectory("tinyattn-weights") {}
};

using ReferenceNet = AttentionNetwork<ReferenceShape, backend::cpu, float>;
using ReferenceNetDouble = AttentionNetwork<ReferenceShape, backend::cpu, double>;
using Layout = ParameterLayout<ReferenceShape>;

std::string fixture(const std::string& name) { return std::string(TINYATTN_TEST_DATA_DIR) + "/" + name; }

TrainerOptions reference_options() {
  TrainerOptions options;
  options.adamw = MinMaxTask::adamw();
  return options;
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

template <class T>
bool bit_identical(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// The elements of one tensor in a flat parameter vector.
template <class T>
std::vector<T> slice(const std::vector<T>& flat, const TensorSpec& spec) {
  const auto first = flat.begin() + static_cast<std::ptrdiff_t>(spec.offset);
  return {first, first + static_cast<std::ptrdiff_t>(spec.count())};
}

// The message of the exception of type E that `action` throws ("" and a failed check otherwise).
template <class E>
std::string message_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("threw another exception: " << e.what());
    return "";
  }
  FAIL("did not throw");
  return "";
}

// The tensors of a weights file for the reference network, built by hand so that a test can break
// one of them. Each tensor owns its bytes.
struct HandMadeWeights {
  struct Entry {
    std::string name;
    io::DType dtype;
    std::vector<std::int64_t> shape;
    std::vector<unsigned char> bytes;
  };
  std::vector<Entry> entries;
  std::map<std::string, std::string> metadata;

  // The parameters of `net` and the four zero biases, F32, as save_weights writes them.
  explicit HandMadeWeights(const ReferenceNet& net) {
    const std::vector<float> flat = net.parameters();
    for (const TensorSpec& spec : Layout::tensors()) add(spec.notebook_name, spec.shape, slice(flat, spec));
    for (const ZeroTensor& bias : Layout::zero_biases(/*notebook_names=*/true)) {
      std::size_t count = 1;
      for (auto d : bias.shape) count *= static_cast<std::size_t>(d);
      add(bias.name, bias.shape, std::vector<float>(count, 0.0f));
    }
  }

  template <class T>
  void add(const std::string& name, const std::vector<std::int64_t>& shape, const std::vector<T>& values) {
    Entry e{name, io::dtype_of<T>(), shape, std::vector<unsigned char>(values.size() * sizeof(T))};
    std::memcpy(e.bytes.data(), values.data(), e.bytes.size());
    entries.push_back(std::move(e));
  }
  Entry& operator[](const std::string& name) {
    for (Entry& e : entries)
      if (e.name == name) return e;
    FAIL("no entry " << name);
    return entries.front();
  }
  void remove(const std::string& name) {
    const auto before = entries.size();
    entries.erase(std::remove_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.name == name; }),
                  entries.end());
    REQUIRE(entries.size() + 1 == before);
  }
  void write(const std::string& path) const {
    std::vector<io::TensorToWrite> tensors;
    for (const Entry& e : entries) tensors.push_back({e.name, e.dtype, e.shape, e.bytes.data(), e.bytes.size()});
    io::write_safetensors(path, tensors, metadata);
  }
};

template <class Net>
void check_round_trip(io::DType dtype_on_disk) {
  Scratch dir;
  const Net saved(/*seed=*/3);
  io::save_weights(saved, dir.file("w.safetensors"), {{"note", "round trip"}, {"epochs", "7"}});

  Net loaded(/*seed=*/99);
  REQUIRE_FALSE(bit_identical(loaded.parameters(), saved.parameters()));
  const io::Metadata returned = io::load_weights(loaded, dir.file("w.safetensors"));
  CHECK(bit_identical(loaded.parameters(), saved.parameters()));
  CHECK(returned.at("note") == "round trip");
  CHECK(returned.at("epochs") == "7");

  // The file itself: the notebook's names and PyTorch shapes, the four zero biases, the shape metadata.
  const auto file = io::SafetensorsFile::load(dir.file("w.safetensors"));
  const std::map<std::string, std::vector<std::int64_t>> expected_shapes{
      {"_token_embedding._weight", {131, 32}},
      {"_positional_embedding._positions", {4, 32}},
      {"_transformer_block._attention._query_weight", {2, 32, 16}},
      {"_transformer_block._attention._key_weight", {2, 32, 16}},
      {"_transformer_block._attention._value_weight", {2, 32, 16}},
      {"_transformer_block._attention._output_weight", {2, 16, 32}},
      {"_transformer_block._attention._query_bias", {2, 16}},
      {"_transformer_block._attention._key_bias", {2, 16}},
      {"_transformer_block._attention._value_bias", {2, 16}},
      {"_transformer_block._attention._output_bias", {32}},
  };
  const std::vector<std::string> names = file.names();
  CHECK(std::set<std::string>(names.begin(), names.end()).size() == names.size());
  CHECK(names.size() == expected_shapes.size());
  for (const auto& [name, shape] : expected_shapes) {
    INFO("tensor " << name);
    REQUIRE(file.contains(name));
    CHECK(file.tensor(name).shape == shape);
    CHECK(file.tensor(name).dtype == dtype_on_disk);
  }
  using Scalar = typename Net::scalar_type;
  for (const TensorSpec& spec : Layout::tensors()) {
    INFO("tensor " << spec.notebook_name);
    CHECK(bit_identical(file.read<Scalar>(spec.notebook_name, spec.shape), slice(saved.parameters(), spec)));
  }
  for (const ZeroTensor& bias : Layout::zero_biases(/*notebook_names=*/true)) {
    INFO("bias " << bias.name);
    const auto values = file.read<Scalar>(bias.name, bias.shape);
    CHECK(std::count(values.begin(), values.end(), Scalar(0)) == static_cast<std::ptrdiff_t>(values.size()));
  }
  const auto& meta = file.metadata();
  CHECK(meta.at("format") == "tinyattn");
  CHECK(meta.at("d_vocab") == "131");
  CHECK(meta.at("d_model") == "32");
  CHECK(meta.at("n_heads") == "2");
  CHECK(meta.at("n_ctx") == "4");
  CHECK(meta.at("n_layers") == "1");
  CHECK(meta.at("unembed") == "\"tied\"");
  CHECK(meta.at("note") == "round trip");
}

TEST_CASE("save_weights then load_weights gives back the float network bit for bit, in the notebook's format") {
  check_round_trip<ReferenceNet>(io::DType::F32);
}

TEST_CASE("save_weights then load_weights gives back the double network bit for bit, as F64") {
  check_round_trip<ReferenceNetDouble>(io::DType::F64);
}

TEST_CASE("an F32 file loads into a double network exactly (widening)") {
  Scratch dir;
  const ReferenceNet saved(5);
  io::save_weights(saved, dir.file("w.safetensors"));
  ReferenceNetDouble loaded(6);
  io::load_weights(loaded, dir.file("w.safetensors"));
  const auto as_float = saved.parameters();
  CHECK(bit_identical(loaded.parameters(), std::vector<double>(as_float.begin(), as_float.end())));
}

TEST_CASE("weights written by PyTorch load and reproduce PyTorch's probe logits") {
  const auto golden = io::SafetensorsFile::load(fixture("golden_reference.safetensors"));
  ReferenceNet net(/*seed=*/123);  // other weights: only the file can make the logits right
  const io::Metadata meta = io::load_weights(net, fixture("torch_weights_seed0.safetensors"));
  CHECK(meta.at("seed") == "0");

  // The same tensors as the golden file's initial weights, exactly.
  for (const TensorSpec& spec : Layout::tensors()) {
    INFO("tensor " << spec.notebook_name);
    const auto expected = golden.read<float>(std::string("init.") + spec.notebook_name, spec.shape);
    CHECK(bit_identical(slice(net.parameters(), spec), expected));
  }

  const auto probe = golden.read<std::int32_t>("probe_indices");
  const MinMaxTask task(128, 0);
  const auto cache = net.inspect(task.batch(std::vector<index_t>(probe.begin(), probe.end())), cache_logits);
  const auto expected = golden.read<float>("probe.logits_last", {64, 131});
  REQUIRE(cache.samples == 64);
  std::size_t bad = 0;
  double worst = 0;
  for (index_t n = 0; n < cache.samples; ++n) {
    const float* logits = cache.logits_at(n, ReferenceShape::context - 1);
    for (index_t c = 0; c < ReferenceShape::vocab; ++c) {
      const double a = logits[c], e = expected[static_cast<std::size_t>(n * ReferenceShape::vocab + c)];
      worst = std::max(worst, std::abs(a - e));
      if (!(std::abs(a - e) <= 1e-6 + 1e-5 * std::abs(e))) ++bad;
    }
  }
  CHECK_MESSAGE(bad == 0, bad << " logits outside |a-e| <= 1e-6 + 1e-5|e|; max |error| " << worst);
}

TEST_CASE("load_weights rejects a file that does not fit the network and leaves the network unchanged") {
  Scratch dir;
  ReferenceNet net(/*seed=*/1);
  const std::vector<float> before = net.parameters();
  const std::string path = dir.file("w.safetensors");

  SUBCASE("another configuration: the message names the key and both values") {
    const AttentionNetwork<Shape<131, 24, 3, 4>> other(2);
    io::save_weights(other, path);
    const std::string message = message_of<io::FormatError>([&] { io::load_weights(net, path); });
    CHECK(message.find(path) != std::string::npos);
    CHECK(message.find("d_model = 24, this model has 32") != std::string::npos);
  }
  SUBCASE("another shape without configuration metadata: the message names the tensor and both shapes") {
    HandMadeWeights weights{ReferenceNet(7)};
    weights.remove("_token_embedding._weight");
    weights.add("_token_embedding._weight", {131, 24}, std::vector<float>(131 * 24, 0.5f));
    weights.write(path);
    const std::string message = message_of<io::FormatError>([&] { io::load_weights(net, path); });
    CHECK(message.find("'_token_embedding._weight'") != std::string::npos);
    CHECK(message.find("(131, 24)") != std::string::npos);
    CHECK(message.find("(131, 32)") != std::string::npos);
  }
  SUBCASE("another shape in a later tensor only (W_pos): the earlier tensors are not half-loaded") {
    HandMadeWeights weights{ReferenceNet(7)};
    weights["_positional_embedding._positions"].shape = {2, 64};
    weights.write(path);
    const std::string message = message_of<io::FormatError>([&] { io::load_weights(net, path); });
    CHECK(message.find("'_positional_embedding._positions' has shape (2, 64), expected (4, 32)") != std::string::npos);
  }
  SUBCASE("a nonzero bias is rejected by name") {
    HandMadeWeights weights{ReferenceNet(7)};
    auto& bias = weights["_transformer_block._attention._key_bias"];
    const float one = 1.0f;
    std::memcpy(bias.bytes.data() + 5 * sizeof(float), &one, sizeof one);
    weights.write(path);
    const std::string message = message_of<io::FormatError>([&] { io::load_weights(net, path); });
    CHECK(message.find("'_transformer_block._attention._key_bias'") != std::string::npos);
    CHECK(message.find("element 5") != std::string::npos);
  }
  SUBCASE("a missing parameter tensor is named") {
    HandMadeWeights weights{ReferenceNet(7)};
    weights.remove("_transformer_block._attention._output_weight");
    weights.write(path);
    const std::string message = message_of<io::FormatError>([&] { io::load_weights(net, path); });
    CHECK(message.find("no tensor '_transformer_block._attention._output_weight'") != std::string::npos);
  }
  SUBCASE("a parameter tensor of dtype I32") {
    HandMadeWeights weights{ReferenceNet(7)};
    weights.remove("_positional_embedding._positions");
    weights.add("_positional_embedding._positions", {4, 32}, std::vector<std::int32_t>(4 * 32, 1));
    weights.write(path);
    const std::string message = message_of<io::FormatError>([&] { io::load_weights(net, path); });
    CHECK(message.find("'_positional_embedding._positions' has dtype I32, expected F32") != std::string::npos);
  }
  SUBCASE("a truncated file") {
    io::save_weights(ReferenceNet(7), path);
    std::vector<unsigned char> bytes = read_bytes(path);
    bytes.resize(bytes.size() - 100);
    write_bytes(path, bytes);
    const std::string message = message_of<io::FormatError>([&] { io::load_weights(net, path); });
    CHECK(message.find(path) != std::string::npos);
    CHECK(message.find("truncated") != std::string::npos);
  }
  SUBCASE("a missing file: IoError naming the path") {
    const std::string missing = dir.file("nothing-here.safetensors");
    const std::string message = message_of<io::IoError>([&] { io::load_weights(net, missing); });
    CHECK(message.find(missing) != std::string::npos);
    CHECK(message.find("No such file") != std::string::npos);
  }
  CHECK(bit_identical(net.parameters(), before));
}

TEST_CASE("a checkpoint resumes training bit-identically") {
  Scratch dir;
  const MinMaxTask task(128, 0);
  const TokenBatch train = task.train(), test = task.test();

  ReferenceNet straight(0);
  Trainer<ReferenceNet> straight_trainer(straight, train, test, reference_options());
  straight_trainer.run(10);

  ReferenceNet first_half(0);
  Trainer<ReferenceNet> first_trainer(first_half, train, test, reference_options());
  first_trainer.run(5);
  const std::string path = dir.file("checkpoint.safetensors");
  io::save_checkpoint(first_trainer, path, {{"epochs", "5"}});

  ReferenceNet resumed(/*seed=*/42);  // nothing in common with the run but the checkpoint
  Trainer<ReferenceNet> resumed_trainer(resumed, train, test, reference_options());
  const io::Metadata meta = io::load_checkpoint(resumed_trainer, path);
  CHECK(meta.at("adamw.step") == "5");
  CHECK(meta.at("epochs") == "5");
  CHECK(resumed_trainer.optimizer().steps() == 5);
  CHECK(bit_identical(resumed.parameters(), first_half.parameters()));
  CHECK(bit_identical(resumed_trainer.optimizer().first_moment(), first_trainer.optimizer().first_moment()));
  CHECK(bit_identical(resumed_trainer.optimizer().second_moment(), first_trainer.optimizer().second_moment()));

  const EpochMetrics last = resumed_trainer.run(5);
  CHECK(last.epoch == 10);
  CHECK(bit_identical(resumed.parameters(), straight.parameters()));
  CHECK(bit_identical(resumed_trainer.optimizer().first_moment(), straight_trainer.optimizer().first_moment()));
  CHECK(bit_identical(resumed_trainer.optimizer().second_moment(), straight_trainer.optimizer().second_moment()));
}

TEST_CASE("load_checkpoint rejects a missing or corrupt 'adamw.step' and leaves the trainer unchanged") {
  Scratch dir;
  const MinMaxTask task(128, 0);
  ReferenceNet net(0);
  Trainer<ReferenceNet> trainer(net, task.train(), TokenBatch{});
  trainer.run(2);
  const std::string good = dir.file("good.safetensors");
  io::save_checkpoint(trainer, good);

  // The same tensors with the step metadata replaced (or removed).
  auto rewrite_step = [&](const char* step) {
    const auto file = io::SafetensorsFile::load(good);
    std::vector<io::TensorToWrite> tensors;
    for (const io::TensorView& v : file.tensors()) tensors.push_back({v.name, v.dtype, v.shape, v.data, v.bytes});
    std::map<std::string, std::string> meta = file.metadata();
    if (step)
      meta["adamw.step"] = step;
    else
      meta.erase("adamw.step");
    const std::string path = dir.file("bad.safetensors");
    io::write_safetensors(path, tensors, meta);
    return path;
  };

  ReferenceNet other(9);
  Trainer<ReferenceNet> other_trainer(other, task.train(), TokenBatch{});
  other_trainer.run(1);
  const auto params = other.parameters();
  const auto m = other_trainer.optimizer().first_moment();

  for (const char* step : {"five", "-1", "5x", "", "99999999999999999999999", "+5", " 5", "5 "}) {
    INFO("adamw.step = '" << step << "'");
    const std::string bad = rewrite_step(step);
    const std::string message = message_of<io::FormatError>([&] { io::load_checkpoint(other_trainer, bad); });
    CHECK(message.find("'adamw.step'") != std::string::npos);
    CHECK(message.find("non-negative decimal integer") != std::string::npos);
  }
  const std::string no_step = rewrite_step(nullptr);
  const std::string message = message_of<io::FormatError>([&] { io::load_checkpoint(other_trainer, no_step); });
  CHECK(message.find("'adamw.step' is missing") != std::string::npos);

  CHECK(other_trainer.optimizer().steps() == 1);
  CHECK(bit_identical(other.parameters(), params));
  CHECK(bit_identical(other_trainer.optimizer().first_moment(), m));

  // The untouched file loads.
  io::load_checkpoint(other_trainer, good);
  CHECK(other_trainer.optimizer().steps() == 2);
  CHECK(bit_identical(other.parameters(), net.parameters()));
}

TEST_CASE("a weights file is not a checkpoint: load_checkpoint names the missing optimizer state") {
  Scratch dir;
  const MinMaxTask task(128, 0);
  ReferenceNet net(0);
  Trainer<ReferenceNet> trainer(net, task.train(), TokenBatch{});
  const std::string path = dir.file("w.safetensors");
  io::save_weights(net, path);
  const std::string message = message_of<io::FormatError>([&] { io::load_checkpoint(trainer, path); });
  CHECK(message.find("no tensor 'adamw.exp_avg._token_embedding._weight'") != std::string::npos);
  CHECK(trainer.optimizer().steps() == 0);
}

}  // namespace
}  // namespace tinyattn::test
