// tinyattn/io/weights.hpp — a network's weights and a trainer's checkpoint as safetensors files.
//
// Weights carry TransformerLens's state-dict names and shapes (model/parameter_layout.hpp: embed.W_E,
// blocks.0.attn.W_Q (H, D, dh), unembed.W_U ...), F32 for float networks (F64 for double), frozen-zero
// biases as zero tensors, and the configuration in `__metadata__` under the PyTorch peer's keys
// (d_vocab, d_vocab_out, n_ctx, d_model, n_heads, d_head, n_layers, attn_mask, d_mlp, act_fn,
// normalization, biases, unembed, loss), each value JSON-encoded as the peer writes it ("128",
// "\"causal\""). The reference experiment's model family (one attention-only layer, tied, no
// trainable biases) is written by default under the original notebook's names instead, with its four
// zero biases, so PyTorch's load_state_dict of the notebook takes it unchanged. Either naming loads.
//
// Loading refuses, naming the difference and changing nothing: a configuration key of the file that
// differs from the compiled model, a missing tensor, a tensor of another shape or dtype, a tensor the
// model does not have (zero biases excepted: they equal frozen or absent ones).
//
// A checkpoint adds what resuming needs to continue bit-identically: both AdamW moments (tensors
// "adamw.exp_avg.<name>", "adamw.exp_avg_sq.<name>"), the optimizer's step count (metadata
// "adamw.step") and the epochs trained ("trainer.epochs"), next to the caller's metadata. Writes are
// atomic (temporary file, fsync, rename): an interrupted save never leaves a half-written file.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tinyattn/io/safetensors.hpp"
#include "tinyattn/model/parameter_layout.hpp"

namespace tinyattn::io {

using Metadata = std::map<std::string, std::string>;

// Which tensor names a weights file gets.
enum class WeightNames {
  automatic,         // the notebook's for its model family (the reference experiment), else TransformerLens's
  transformer_lens,  // embed.W_E, blocks.0.attn.W_Q, ...
  notebook,          // _token_embedding._weight, ...: the notebook's model family only
};

namespace detail {

template <class Net>
constexpr bool notebook_family() {
  return Net::Layout::notebook_family;
}

// The model's configuration under the peer's keys, values JSON-encoded.
template <class Net>
Metadata config_metadata() {
  using Arch = typename Net::Architecture;
  const auto quoted = [](const char* s) { return std::string("\"") + s + "\""; };
  Metadata m;
  m["format"] = "tinyattn";
  m["d_vocab"] = std::to_string(Net::vocab);
  m["d_vocab_out"] = std::to_string(Net::vocab_out);
  m["n_ctx"] = std::to_string(Net::context);
  m["d_model"] = std::to_string(Net::d_model);
  m["n_heads"] = std::to_string(Net::heads);
  m["d_head"] = std::to_string(Net::head_dim);
  m["n_layers"] = std::to_string(Net::layers);
  m["attn_mask"] = quoted(Arch::causal ? "causal" : "none");
  m["d_mlp"] = std::to_string(Net::d_mlp);
  m["act_fn"] = quoted(Arch::activation == Activation::gelu ? "gelu" : "relu");
  m["normalization"] = quoted(Arch::layer_norm ? "ln" : "none");
  m["biases"] = quoted(Arch::trainable_biases ? "on" : "off");  // frozen-zero and absent: the peer's "off"
  m["unembed"] = quoted(Arch::tied ? "tied" : "untied");
  m["loss"] = quoted(Arch::loss == LossPositions::every ? "all" : "last");
  return m;
}

// A metadata value without the JSON string quotes the peer puts around strings.
inline std::string unquoted(const std::string& value) {
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') return value.substr(1, value.size() - 2);
  return value;
}

// Refuses a file whose configuration metadata differs from the model's. Keys the file lacks are not
// checked (the shapes still are); act_fn only matters with an MLP; loss and training keys are not the
// model's. Also the reference format's older keys (vocab, d_model, heads, context).
template <class Net>
void check_config(const SafetensorsFile& file) {
  const Metadata mine = config_metadata<Net>();
  const Metadata& theirs = file.metadata();
  const auto differs = [&](const std::string& key, const std::string& expected) {
    const auto it = theirs.find(key);
    if (it == theirs.end() || unquoted(it->second) == unquoted(expected)) return;
    throw FormatError(file.source_name() + ": the file's configuration has " + key + " = " + unquoted(it->second) +
                      ", this model has " + unquoted(expected) + " (a model of another configuration wrote it)");
  };
  for (const char* key : {"d_vocab", "d_vocab_out", "n_ctx", "d_model", "n_heads", "d_head", "n_layers", "attn_mask",
                          "d_mlp", "normalization", "biases", "unembed"})
    differs(key, mine.at(key));
  if (Net::d_mlp > 0) differs("act_fn", mine.at("act_fn"));
  differs("vocab", std::to_string(Net::vocab));
  differs("heads", std::to_string(Net::heads));
  differs("context", std::to_string(Net::context));
}

template <class Net>
bool file_uses_notebook_names(const SafetensorsFile& file) {
  return file.contains("_token_embedding._weight");
}

template <class Net>
std::string tensor_name(const TensorSpec& spec, bool notebook, const std::string& prefix = "") {
  return prefix + (notebook ? spec.notebook_name : spec.name);
}

// Appends the parameter tensors of `flat` (Layout order) under `prefix` + name.
template <class Net, class Scalar>
void add_parameter_tensors(std::vector<TensorToWrite>& out, const std::vector<Scalar>& flat, bool notebook,
                           const std::string& prefix) {
  for (const TensorSpec& spec : Net::Layout::tensors())
    out.push_back(
        tensor_to_write(tensor_name<Net>(spec, notebook, prefix), spec.shape, flat.data() + spec.offset, spec.count()));
}

// Reads the parameter tensors under `prefix` into a flat vector (Layout order); F32 or F64 on disk.
template <class Net>
std::vector<typename Net::scalar_type> read_parameter_tensors(const SafetensorsFile& file, bool notebook,
                                                              const std::string& prefix) {
  using Scalar = typename Net::scalar_type;
  std::vector<Scalar> flat(Net::parameter_count);
  for (const TensorSpec& spec : Net::Layout::tensors()) {
    const std::string name = tensor_name<Net>(spec, notebook, prefix);
    const TensorView& view = file.tensor(name);  // FormatError naming the file and what it has
    if (view.dtype == DType::F64) {
      const auto values = file.read<double>(name, spec.shape);
      std::copy(values.begin(), values.end(), flat.begin() + static_cast<std::ptrdiff_t>(spec.offset));
    } else {
      const auto values = file.read<float>(name, spec.shape);  // FormatError for any other dtype
      std::copy(values.begin(), values.end(), flat.begin() + static_cast<std::ptrdiff_t>(spec.offset));
    }
  }
  return flat;
}

inline std::vector<double> read_as_double(const SafetensorsFile& file, const std::string& name) {
  const TensorView& view = file.tensor(name);
  if (view.dtype == DType::F64) return file.read<double>(name);
  const auto f = file.read<float>(name);
  return {f.begin(), f.end()};
}

// Every tensor of the file must be one the model reads, a zero bias (the model's frozen or absent
// ones), or optimizer state (a checkpoint's "adamw." tensors).
template <class Net>
void check_no_foreign_tensors(const SafetensorsFile& file, bool notebook) {
  std::set<std::string> known;
  for (const TensorSpec& spec : Net::Layout::tensors()) known.insert(tensor_name<Net>(spec, notebook));
  // Bias tensors this model does not train (frozen at zero or absent) may be in the file as zeros.
  std::set<std::string> zero_ok;
  if constexpr (!Net::Architecture::trainable_biases) {
    for (index_t l = 0; l < Net::layers; ++l)
      for (const char* suffix : {"attn.b_Q", "attn.b_K", "attn.b_V", "attn.b_O", "mlp.b_in", "mlp.b_out"})
        zero_ok.insert("blocks." + std::to_string(l) + "." + suffix);
    zero_ok.insert("unembed.b_U");
    for (const char* name : {"_transformer_block._attention._query_bias", "_transformer_block._attention._key_bias",
                             "_transformer_block._attention._value_bias", "_transformer_block._attention._output_bias"})
      zero_ok.insert(name);
  }
  for (const std::string& name : file.names()) {
    if (known.count(name) || name.rfind("adamw.", 0) == 0) continue;
    if (!zero_ok.count(name))
      throw FormatError(file.source_name() + ": tensor '" + name +
                        "' is not a tensor of this model (a model of another configuration wrote the file?)");
    const std::vector<double> values = read_as_double(file, name);
    for (std::size_t i = 0; i < values.size(); ++i)
      if (values[i] != 0.0)
        throw FormatError(
            tinyattn::detail::concat(file.source_name(), ": tensor '", name, "' element ", i, " is ", values[i],
                                     ", expected 0: this model's biases are ",
                                     Net::Architecture::biases == Biases::absent ? "absent" : "frozen at zero"));
  }
}

template <class Net>
bool choose_notebook(WeightNames names) {
  if (names == WeightNames::notebook) {
    require(notebook_family<Net>(),
            "save_weights: the notebook's names exist only for its model family (one "
            "attention-only layer, tied, no trainable biases, d_head = D / H)");
    return true;
  }
  return names == WeightNames::automatic && notebook_family<Net>();
}

}  // namespace detail

// Writes the network's weights to `path` (atomically). Metadata: the configuration, then `metadata`.
template <class Net>
void save_weights(const Net& net, const std::string& path, const Metadata& metadata = {},
                  WeightNames names = WeightNames::automatic) {
  using Scalar = typename Net::scalar_type;
  const bool notebook = detail::choose_notebook<Net>(names);
  const std::vector<Scalar> flat = net.parameters();
  std::vector<TensorToWrite> tensors;
  detail::add_parameter_tensors<Net>(tensors, flat, notebook, "");
  const std::vector<ZeroTensor> zero_biases = Net::Layout::zero_biases(notebook);
  std::vector<std::vector<Scalar>> zeros;
  zeros.reserve(zero_biases.size());
  for (const ZeroTensor& z : zero_biases) {
    std::size_t count = 1;
    for (auto d : z.shape) count *= static_cast<std::size_t>(d);
    zeros.emplace_back(count, Scalar(0));
    tensors.push_back(tensor_to_write(z.name, z.shape, zeros.back().data(), count));
  }
  Metadata all = detail::config_metadata<Net>();
  for (const auto& [key, value] : metadata) all[key] = value;
  write_safetensors(path, tensors, all);
}

// Loads weights (either naming) into the network and returns the file's metadata.
// ensures: on any error (IoError, FormatError naming what differs) the network is unchanged.
template <class Net>
Metadata load_weights(Net& net, const std::string& path) {
  const SafetensorsFile file = SafetensorsFile::load(path);
  detail::check_config<Net>(file);
  const bool notebook = detail::file_uses_notebook_names<Net>(file);
  if (notebook && !detail::notebook_family<Net>())
    throw FormatError(file.source_name() +
                      ": the file has the notebook's tensor names, which only its model family "
                      "(one attention-only layer, tied unembedding) uses");
  auto flat = detail::read_parameter_tensors<Net>(file, notebook, "");
  detail::check_no_foreign_tensors<Net>(file, notebook);
  net.set_parameters(flat);
  return file.metadata();
}

// A trainer's full state: weights, AdamW moments, step and epoch counts, plus the caller's metadata.
template <class Trainer>
void save_checkpoint(const Trainer& trainer, const std::string& path, const Metadata& metadata = {}) {
  using Net = std::remove_cv_t<std::remove_reference_t<decltype(trainer.network())>>;
  using Scalar = typename Trainer::Scalar;
  const bool notebook = detail::notebook_family<Net>();
  const std::vector<Scalar> params = trainer.network().parameters();
  const std::vector<Scalar> m = trainer.optimizer().first_moment(), v = trainer.optimizer().second_moment();
  std::vector<TensorToWrite> tensors;
  detail::add_parameter_tensors<Net>(tensors, params, notebook, "");
  detail::add_parameter_tensors<Net>(tensors, m, notebook, "adamw.exp_avg.");
  detail::add_parameter_tensors<Net>(tensors, v, notebook, "adamw.exp_avg_sq.");
  Metadata all = detail::config_metadata<Net>();
  for (const auto& [key, value] : metadata) all[key] = value;
  all["adamw.step"] = std::to_string(trainer.optimizer().steps());
  all["trainer.epochs"] = std::to_string(trainer.epochs());
  write_safetensors(path, tensors, all);
}

namespace detail {
// A non-negative decimal integer with nothing around it ("+5", " 5", "5x" are refused).
inline std::int64_t parse_count(const SafetensorsFile& file, const std::string& key) {
  const auto it = file.metadata().find(key);
  if (it == file.metadata().end())
    throw FormatError(file.source_name() + ": metadata '" + key + "' is missing: not a tinyattn checkpoint");
  const std::string& text = it->second;
  std::int64_t value = 0;
  bool ok = !text.empty() && text.size() <= 18;
  for (char c : text) {
    ok = ok && c >= '0' && c <= '9';
    if (ok) value = value * 10 + (c - '0');
  }
  if (!ok)
    throw FormatError(file.source_name() + ": metadata '" + key + "' is '" + text +
                      "', expected a non-negative decimal integer");
  return value;
}
}  // namespace detail

// Restores a checkpoint into the trainer (network weights, optimizer state, epochs); returns the metadata.
// ensures: on any error the trainer and network are unchanged.
template <class Trainer>
Metadata load_checkpoint(Trainer& trainer, const std::string& path) {
  using Net = std::remove_cv_t<std::remove_reference_t<decltype(trainer.network())>>;
  const SafetensorsFile file = SafetensorsFile::load(path);
  detail::check_config<Net>(file);
  const bool notebook = detail::file_uses_notebook_names<Net>(file);
  if (notebook && !detail::notebook_family<Net>())
    throw FormatError(file.source_name() +
                      ": the file has the notebook's tensor names, which only its model family uses");
  auto params = detail::read_parameter_tensors<Net>(file, notebook, "");
  auto m = detail::read_parameter_tensors<Net>(file, notebook, "adamw.exp_avg.");
  auto v = detail::read_parameter_tensors<Net>(file, notebook, "adamw.exp_avg_sq.");
  const std::int64_t steps = detail::parse_count(file, "adamw.step");
  // Older checkpoints (full batch only) have no epoch count: one step per epoch.
  const std::int64_t epochs =
      file.metadata().count("trainer.epochs") ? detail::parse_count(file, "trainer.epochs") : steps;
  trainer.optimizer().restore(m, v, steps);
  trainer.restore_epochs(epochs);
  trainer.network().set_parameters(params);
  return file.metadata();
}

}  // namespace tinyattn::io
