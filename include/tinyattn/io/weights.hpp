// tinyattn/io/weights.hpp — a network's weights and a trainer's checkpoint as safetensors files.
//
// Weights use the original notebook's state_dict names and shapes (ParameterLayout), F32 for float
// networks (F64 for double), plus the notebook's four frozen biases as zeros, so a PyTorch user can
// load_state_dict them unchanged and the reference script's --eval reads them. Files from PyTorch load
// back; a file of another shape is rejected naming the tensor and both shapes.
//
// A checkpoint adds what resuming needs to continue bit-identically: both AdamW moments (tensors
// "adamw.exp_avg.<name>", "adamw.exp_avg_sq.<name>") and the step count (metadata "adamw.step"),
// next to the caller's metadata (epoch, hyper-parameters...). Writes are atomic (temporary file,
// fsync, rename): an interrupted save never leaves a half-written file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tinyattn/io/safetensors.hpp"
#include "tinyattn/model/parameter_layout.hpp"

namespace tinyattn::io {

using Metadata = std::map<std::string, std::string>;

namespace detail {

template <class Shape>
Metadata shape_metadata() {
  return {{"format", "tinyattn"},
          {"vocab", std::to_string(Shape::vocab)},
          {"d_model", std::to_string(Shape::d_model)},
          {"heads", std::to_string(Shape::heads)},
          {"context", std::to_string(Shape::context)}};
}

// Appends the parameter tensors of `flat` (Layout order) under `prefix` + PyTorch name.
template <class Shape, class Scalar>
void add_parameter_tensors(std::vector<TensorToWrite>& out, const std::vector<Scalar>& flat,
                           const std::string& prefix) {
  for (const TensorSpec& spec : ParameterLayout<Shape>::tensors())
    out.push_back(tensor_to_write(prefix + spec.name, spec.shape, flat.data() + spec.offset, spec.count()));
}

// Reads the parameter tensors under `prefix` into a flat vector (Layout order); F32 or F64 on disk.
template <class Shape, class Scalar>
std::vector<Scalar> read_parameter_tensors(const SafetensorsFile& file, const std::string& prefix) {
  std::vector<Scalar> flat(ParameterLayout<Shape>::count);
  for (const TensorSpec& spec : ParameterLayout<Shape>::tensors()) {
    const std::string name = prefix + spec.name;
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

// The notebook's biases must be absent or zero: tinyattn's are frozen at zero.
template <class Shape>
void check_frozen_biases(const SafetensorsFile& file) {
  for (const auto& [name, shape] : ParameterLayout<Shape>::frozen_zero_biases()) {
    if (!file.contains(name)) continue;
    const TensorView& view = file.tensor(name);
    std::vector<double> values;
    if (view.dtype == DType::F64) {
      values = file.read<double>(name, shape);
    } else {
      const auto f = file.read<float>(name, shape);
      values.assign(f.begin(), f.end());
    }
    for (std::size_t i = 0; i < values.size(); ++i)
      if (values[i] != 0.0)
        throw FormatError(tinyattn::detail::concat(file.source_name(), ": tensor '", name, "' element ", i, " is ",
                                                   values[i], ", expected 0: tinyattn's biases are frozen at zero"));
  }
}

}  // namespace detail

// Writes the network's weights to `path` (atomically). Metadata: the shape, then `metadata`.
template <class Net>
void save_weights(const Net& net, const std::string& path, const Metadata& metadata = {}) {
  using Shape = typename Net::Shape;
  using Scalar = typename Net::scalar_type;
  const std::vector<Scalar> flat = net.parameters();
  std::vector<TensorToWrite> tensors;
  detail::add_parameter_tensors<Shape>(tensors, flat, "");
  std::vector<std::vector<Scalar>> zeros;
  zeros.reserve(4);
  for (const auto& [name, shape] : ParameterLayout<Shape>::frozen_zero_biases()) {
    std::size_t count = 1;
    for (auto d : shape) count *= static_cast<std::size_t>(d);
    zeros.emplace_back(count, Scalar(0));
    tensors.push_back(tensor_to_write(name, shape, zeros.back().data(), count));
  }
  Metadata all = detail::shape_metadata<Shape>();
  for (const auto& [key, value] : metadata) all[key] = value;
  write_safetensors(path, tensors, all);
}

// Loads weights into the network and returns the file's metadata.
// ensures: on any error (IoError, FormatError naming tensor and expected vs found) the network is
//          unchanged.
template <class Net>
Metadata load_weights(Net& net, const std::string& path) {
  using Shape = typename Net::Shape;
  const SafetensorsFile file = SafetensorsFile::load(path);
  auto flat = detail::read_parameter_tensors<Shape, typename Net::scalar_type>(file, "");
  detail::check_frozen_biases<Shape>(file);
  net.set_parameters(flat);
  return file.metadata();
}

// A trainer's full state: weights, AdamW moments and step count, plus the caller's metadata.
template <class Trainer>
void save_checkpoint(const Trainer& trainer, const std::string& path, const Metadata& metadata = {}) {
  using Shape = typename Trainer::Shape;
  using Scalar = typename Trainer::Scalar;
  const std::vector<Scalar> params = trainer.network().parameters();
  const std::vector<Scalar> m = trainer.optimizer().first_moment(), v = trainer.optimizer().second_moment();
  std::vector<TensorToWrite> tensors;
  detail::add_parameter_tensors<Shape>(tensors, params, "");
  detail::add_parameter_tensors<Shape>(tensors, m, "adamw.exp_avg.");
  detail::add_parameter_tensors<Shape>(tensors, v, "adamw.exp_avg_sq.");
  Metadata all = detail::shape_metadata<Shape>();
  for (const auto& [key, value] : metadata) all[key] = value;
  all["adamw.step"] = std::to_string(trainer.optimizer().steps());
  write_safetensors(path, tensors, all);
}

// Restores a checkpoint into the trainer (network weights and optimizer state); returns the metadata.
// ensures: on any error the trainer and network are unchanged.
template <class Trainer>
Metadata load_checkpoint(Trainer& trainer, const std::string& path) {
  using Shape = typename Trainer::Shape;
  using Scalar = typename Trainer::Scalar;
  const SafetensorsFile file = SafetensorsFile::load(path);
  auto params = detail::read_parameter_tensors<Shape, Scalar>(file, "");
  auto m = detail::read_parameter_tensors<Shape, Scalar>(file, "adamw.exp_avg.");
  auto v = detail::read_parameter_tensors<Shape, Scalar>(file, "adamw.exp_avg_sq.");
  const auto step = file.metadata().find("adamw.step");
  if (step == file.metadata().end())
    throw FormatError(file.source_name() + ": metadata 'adamw.step' is missing: not a tinyattn checkpoint");
  std::int64_t steps = -1;
  try {
    std::size_t used = 0;
    steps = std::stoll(step->second, &used);
    if (used != step->second.size()) steps = -1;
  } catch (const std::exception&) {
  }
  if (steps < 0)
    throw FormatError(file.source_name() + ": metadata 'adamw.step' is '" + step->second +
                      "', expected a non-negative integer");
  trainer.optimizer().restore(m, v, steps);
  trainer.network().set_parameters(params);
  return file.metadata();
}

}  // namespace tinyattn::io
