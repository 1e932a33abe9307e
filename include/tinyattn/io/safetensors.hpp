// tinyattn/io/safetensors.hpp — read and write the safetensors format.
//
// Layout (https://github.com/huggingface/safetensors):
//   8 bytes   N, unsigned 64-bit little endian: the length of the header
//   N bytes   UTF-8 JSON object, possibly padded with trailing spaces:
//               { "__metadata__": {"key": "value", ...},                       (optional)
//                 "<tensor name>": {"dtype": "F32", "shape": [2, 3],
//                                   "data_offsets": [begin, end]}, ... }
//   rest      the byte buffer; data_offsets are relative to its start, little-endian elements,
//             row-major. Every byte of the buffer belongs to exactly one tensor.
//
// The reader accepts exactly what the reference implementation accepts and checks everything
// before anything is handed out, so a TensorView can be trusted: its bytes lie inside the buffer
// and match its dtype and shape. A malformed file never crashes, never reads out of bounds and
// never allocates more than the file's own size (plus the parsed header) — header values are only
// trusted after they have been checked against the file.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tinyattn/core/config.hpp"
#include "tinyattn/io/atomic_file.hpp"

namespace tinyattn::io {

// Thrown when a file's content does not follow its format, or does not hold what the caller asked
// for (missing tensor, other dtype or shape). The message names the file, the tensor where there is
// one, and what was expected and found.
class FormatError : public Error {
 public:
  using Error::Error;
};

// ------------------------------------------------------------------------------------------------
// Element types, named as in the safetensors header.
enum class DType { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64 };

inline constexpr DType kAllDTypes[] = {DType::BOOL, DType::U8,  DType::I8,  DType::F8_E5M2, DType::F8_E4M3,
                                       DType::I16,  DType::U16, DType::F16, DType::BF16,    DType::I32,
                                       DType::U32,  DType::F32, DType::I64, DType::U64,     DType::F64};

// The header spelling: "F32", "I64", ...
constexpr std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::BOOL:
      return "BOOL";
    case DType::U8:
      return "U8";
    case DType::I8:
      return "I8";
    case DType::F8_E5M2:
      return "F8_E5M2";
    case DType::F8_E4M3:
      return "F8_E4M3";
    case DType::I16:
      return "I16";
    case DType::U16:
      return "U16";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I32:
      return "I32";
    case DType::U32:
      return "U32";
    case DType::F32:
      return "F32";
    case DType::I64:
      return "I64";
    case DType::U64:
      return "U64";
    case DType::F64:
      return "F64";
  }
  return "?";
}

// Bytes per element.
constexpr std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::BOOL:
    case DType::U8:
    case DType::I8:
    case DType::F8_E5M2:
    case DType::F8_E4M3:
      return 1;
    case DType::I16:
    case DType::U16:
    case DType::F16:
    case DType::BF16:
      return 2;
    case DType::I32:
    case DType::U32:
    case DType::F32:
      return 4;
    case DType::I64:
    case DType::U64:
    case DType::F64:
      return 8;
  }
  return 0;
}

// The dtype spelled `name` in a header, or nullopt for an unknown spelling.
inline std::optional<DType> dtype_from_name(std::string_view name) {
  for (const DType dtype : kAllDTypes) {
    if (dtype_name(dtype) == name) return dtype;
  }
  return std::nullopt;
}

// The dtype that holds C++ type T; the typed accessors exist for exactly these four.
template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) {
    return DType::F32;
  } else if constexpr (std::is_same_v<T, double>) {
    return DType::F64;
  } else if constexpr (std::is_same_v<T, std::int32_t>) {
    return DType::I32;
  } else if constexpr (std::is_same_v<T, std::int64_t>) {
    return DType::I64;
  } else if constexpr (std::is_same_v<T, std::uint8_t>) {
    return DType::U8;
  } else {
    static_assert(dependent_false<T>, "tinyattn::io supports float, double, int32_t, int64_t and uint8_t");
    return DType::U8;
  }
}

// "(131, 32)", "(10922)", "()" for a scalar: how shapes appear in every message.
inline std::string format_shape(const std::vector<std::int64_t>& shape) {
  std::string text = "(";
  for (std::size_t axis = 0; axis < shape.size(); ++axis) {
    if (axis > 0) text += ", ";
    text += std::to_string(shape[axis]);
  }
  return text + ")";
}

namespace detail {

inline constexpr bool kHostIsLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

// a * b, or nullopt when it does not fit in 64 bits.
inline std::optional<std::uint64_t> checked_multiply(std::uint64_t a, std::uint64_t b) {
  std::uint64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) return std::nullopt;
  return product;
}

// Element count of `shape`, or nullopt on a negative extent or 64-bit overflow.
inline std::optional<std::uint64_t> element_count(const std::vector<std::int64_t>& shape) {
  std::uint64_t count = 1;
  for (const std::int64_t extent : shape) {
    if (extent < 0) return std::nullopt;
    const auto product = checked_multiply(count, static_cast<std::uint64_t>(extent));
    if (!product) return std::nullopt;
    count = *product;
  }
  return count;
}

// A name as it appears in messages: quoted, and shortened so a hostile 1 MB name cannot flood logs.
inline std::string quote_name(std::string_view name) {
  constexpr std::size_t kMaxShown = 120;
  if (name.size() <= kMaxShown) return "'" + std::string(name) + "'";
  return "'" + std::string(name.substr(0, kMaxShown)) + "...' (" + std::to_string(name.size()) + " bytes)";
}

// A JSON value as it appears in messages, short whatever its size.
inline std::string describe_json(const nlohmann::json& value) {
  if (value.is_string()) return "the string " + quote_name(value.get_ref<const std::string&>());
  if (value.is_array()) return "an array of " + std::to_string(value.size()) + " elements";
  if (value.is_object()) return "an object";
  return value.dump();  // number, boolean, null: short
}

inline std::uint64_t load_little_endian_u64(const unsigned char* bytes) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// `count` elements of T from little-endian bytes (any host byte order; `bytes` need not be aligned).
template <class T>
std::vector<T> decode_little_endian(const unsigned char* bytes, std::size_t count) {
  std::vector<T> values(count);
  if (count == 0) return values;
  if constexpr (kHostIsLittleEndian) {
    std::memcpy(values.data(), bytes, count * sizeof(T));
  } else {
    using Bits = std::conditional_t<sizeof(T) == 8, std::uint64_t, std::uint32_t>;
    for (std::size_t i = 0; i < count; ++i) {
      Bits bits = 0;
      for (std::size_t b = sizeof(T); b-- > 0;) bits = (bits << 8) | bytes[i * sizeof(T) + b];
      std::memcpy(&values[i], &bits, sizeof(T));
    }
  }
  return values;
}

// Appends `bytes` host-order bytes of `element_size`-byte elements as little endian.
template <class Sink>
void append_little_endian(Sink& sink, const unsigned char* bytes, std::size_t size, std::size_t element_size) {
  if constexpr (kHostIsLittleEndian) {
    (void)element_size;
    sink.append(bytes, size);
  } else {
    unsigned char swapped[4096];  // a multiple of every element size
    for (std::size_t done = 0; done < size;) {
      const std::size_t chunk = std::min(size - done, sizeof swapped);
      for (std::size_t i = 0; i < chunk; ++i) {
        const std::size_t element = i / element_size, byte = i % element_size;
        swapped[i] = bytes[done + element * element_size + (element_size - 1 - byte)];
      }
      sink.append(swapped, chunk);
      done += chunk;
    }
  }
}

}  // namespace detail

// ------------------------------------------------------------------------------------------------
// Reading.

// One tensor of a loaded file. `data` points into the owning SafetensorsFile and is valid as long
// as that object lives (moving the file keeps it valid).
// invariant: bytes == numel() * dtype_size(dtype), every extent >= 0, [data, data + bytes) lies
//            inside the file's byte buffer; elements are little endian, row-major, maybe unaligned.
struct TensorView {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  const unsigned char* data;
  std::size_t bytes;

  std::uint64_t numel() const { return bytes / dtype_size(dtype); }
};

// A parsed and fully validated safetensors file, held in memory. Move-only: the views point into
// its buffer.
class SafetensorsFile {
 public:
  // The reference implementation's limit; a larger header is an attack, not a model.
  static constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

  // Reads and validates the file at `path`. Messages name the file as `path`.
  // ensures: throws IoError when the file cannot be read, FormatError when it is malformed.
  static SafetensorsFile load(const std::string& path) { return parse(read_file_bytes(path), path); }

  // Validates `bytes` as a safetensors file; `source_name` is used in messages.
  // ensures: throws FormatError (naming source_name, the tensor, expected vs found) when malformed;
  //          never reads outside `bytes`.
  static SafetensorsFile parse(std::vector<unsigned char> bytes, std::string source_name);

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& source_name() const { return source_name_; }

  bool contains(const std::string& name) const { return index_by_name_.count(name) != 0; }

  // requires: contains(name), otherwise FormatError listing some of the names that exist.
  const TensorView& tensor(const std::string& name) const {
    const auto found = index_by_name_.find(name);
    if (found == index_by_name_.end()) throw missing_tensor_error(name);
    return tensors_[found->second];
  }

  // All tensors in the order of their bytes in the file (for files written by write_safetensors:
  // the order they were written in).
  const std::vector<TensorView>& tensors() const { return tensors_; }

  std::vector<std::string> names() const {
    std::vector<std::string> result;
    result.reserve(tensors_.size());
    for (const TensorView& view : tensors_) result.push_back(view.name);
    return result;
  }

  // The "__metadata__" object; empty when the file has none.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The values of tensor `name`, checked to have dtype dtype_of<T>() and shape `expected_shape`.
  // requires: T is float (F32), double (F64), std::int32_t (I32) or std::int64_t (I64).
  // ensures:  result.size() == product of expected_shape; otherwise FormatError, e.g.
  //           "w.safetensors: tensor 'emb' has shape (17, 12), expected (131, 32)".
  template <class T>
  std::vector<T> read(const std::string& name, const std::vector<std::int64_t>& expected_shape) const {
    const TensorView& view = checked_view<T>(name);
    if (view.shape != expected_shape) {
      throw FormatError(tinyattn::detail::concat(source_name_, ": tensor ", detail::quote_name(name), " has shape ",
                                                 format_shape(view.shape), ", expected ",
                                                 format_shape(expected_shape)));
    }
    return detail::decode_little_endian<T>(view.data, view.numel());
  }

  // The values of tensor `name` whatever its shape (see tensor(name).shape), dtype checked.
  template <class T>
  std::vector<T> read(const std::string& name) const {
    const TensorView& view = checked_view<T>(name);
    return detail::decode_little_endian<T>(view.data, view.numel());
  }

 private:
  SafetensorsFile() = default;

  template <class... Parts>
  [[noreturn]] void fail(const Parts&... parts) const {
    throw FormatError(tinyattn::detail::concat(source_name_, ": ", parts...));
  }

  FormatError missing_tensor_error(const std::string& name) const {
    constexpr std::size_t kNamesShown = 8;
    std::string known;
    for (std::size_t i = 0; i < tensors_.size() && i < kNamesShown; ++i) {
      known += (i > 0 ? ", " : "") + detail::quote_name(tensors_[i].name);
    }
    if (tensors_.size() > kNamesShown) known += ", ...";
    return FormatError(tinyattn::detail::concat(source_name_, ": no tensor ", detail::quote_name(name),
                                                " (the file has ", tensors_.size(), " tensors",
                                                tensors_.empty() ? "" : ": ", known, ")"));
  }

  template <class T>
  const TensorView& checked_view(const std::string& name) const {
    const TensorView& view = tensor(name);
    constexpr DType wanted = dtype_of<T>();
    if (view.dtype != wanted) {
      throw FormatError(tinyattn::detail::concat(source_name_, ": tensor ", detail::quote_name(name), " has dtype ",
                                                 dtype_name(view.dtype), ", expected ", dtype_name(wanted)));
    }
    return view;
  }

  nlohmann::json parse_header_json(const unsigned char* begin, const unsigned char* end) const;
  void read_metadata(const nlohmann::json& value);
  TensorView read_tensor_entry(const std::string& name, const nlohmann::json& entry, std::uint64_t buffer_size,
                               std::uint64_t& begin_offset) const;

  std::string source_name_;
  std::vector<unsigned char> bytes_;
  std::vector<TensorView> tensors_;                   // sorted by position in the byte buffer
  std::map<std::string, std::size_t> index_by_name_;  // name -> index into tensors_
  std::map<std::string, std::string> metadata_;
};

inline nlohmann::json SafetensorsFile::parse_header_json(const unsigned char* begin, const unsigned char* end) const {
  using nlohmann::json;
  // nlohmann::json keeps the last of two equal keys without a word; a header with two entries for
  // one tensor name is ambiguous, so the parser callback tracks the keys of every open object.
  // It also bounds the nesting depth: no valid header nests deeper than 3.
  constexpr int kMaxDepth = 16;
  std::vector<std::set<std::string>> keys_of_open_objects;
  const json::parser_callback_t check_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        keys_of_open_objects.emplace_back();
        [[fallthrough]];
      case json::parse_event_t::array_start:
        if (depth > kMaxDepth) {
          fail("header JSON nests deeper than ", kMaxDepth,
               " levels, expected {name: {dtype, shape: [...], data_offsets: [...]}}");
        }
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!keys_of_open_objects.empty() && !keys_of_open_objects.back().insert(key).second) {
          fail("duplicate key ", detail::quote_name(key), " in the header JSON",
               depth == 1 ? " (two entries for one tensor name)" : "");
        }
        break;
      }
      case json::parse_event_t::object_end:
        if (!keys_of_open_objects.empty()) keys_of_open_objects.pop_back();
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(reinterpret_cast<const char*>(begin), reinterpret_cast<const char*>(end), check_keys,
                       /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& error) {
    fail("header is not valid JSON: ", error.what());
  }
}

inline void SafetensorsFile::read_metadata(const nlohmann::json& value) {
  if (!value.is_object()) {
    fail("__metadata__ is ", detail::describe_json(value), ", expected an object of strings");
  }
  for (const auto& [key, text] : value.items()) {
    if (!text.is_string()) {
      fail("__metadata__ entry ", detail::quote_name(key), " is ", detail::describe_json(text), ", expected a string");
    }
    metadata_.emplace(key, text.get<std::string>());
  }
}

inline TensorView SafetensorsFile::read_tensor_entry(const std::string& name, const nlohmann::json& entry,
                                                     std::uint64_t buffer_size, std::uint64_t& begin_offset) const {
  const std::string tensor = "tensor " + detail::quote_name(name);
  if (!entry.is_object()) {
    fail(tensor, " is ", detail::describe_json(entry), ", expected an object with dtype, shape and data_offsets");
  }
  for (const auto& field : entry.items()) {
    if (field.key() != "dtype" && field.key() != "shape" && field.key() != "data_offsets") {
      fail(tensor, " has unexpected field ", detail::quote_name(field.key()),
           ", expected only dtype, shape and data_offsets");
    }
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(field)) fail(tensor, " has no field '", field, "'");
  }

  // dtype
  const nlohmann::json& dtype_json = entry["dtype"];
  if (!dtype_json.is_string()) {
    fail(tensor, " has dtype ", detail::describe_json(dtype_json), ", expected a string like \"F32\"");
  }
  const std::string& dtype_text = dtype_json.get_ref<const std::string&>();
  const std::optional<DType> dtype = dtype_from_name(dtype_text);
  if (!dtype) {
    std::string known;
    for (const DType candidate : kAllDTypes) {
      known += (known.empty() ? "" : ", ") + std::string(dtype_name(candidate));
    }
    fail(tensor, " has unknown dtype ", detail::quote_name(dtype_text), ", expected one of ", known);
  }

  // shape
  const nlohmann::json& shape_json = entry["shape"];
  if (!shape_json.is_array()) {
    fail(tensor, " has shape ", detail::describe_json(shape_json), ", expected an array of non-negative integers");
  }
  std::vector<std::int64_t> shape;
  shape.reserve(shape_json.size());
  for (std::size_t axis = 0; axis < shape_json.size(); ++axis) {
    const nlohmann::json& extent = shape_json[axis];
    // nlohmann stores non-negative integers as number_unsigned, negative ones as number_integer.
    if (!extent.is_number_unsigned() ||
        extent.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      fail(tensor, " has shape entry ", axis, " = ", detail::describe_json(extent),
           ", expected a non-negative integer below 2^63");
    }
    shape.push_back(extent.get<std::int64_t>());
  }
  const std::optional<std::uint64_t> numel = detail::element_count(shape);
  const std::optional<std::uint64_t> expected_bytes =
      numel ? detail::checked_multiply(*numel, dtype_size(*dtype)) : std::nullopt;
  if (!expected_bytes) {
    fail(tensor, " has shape ", format_shape(shape), " whose size in bytes overflows 64 bits");
  }

  // data_offsets
  const nlohmann::json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    fail(tensor, " has data_offsets ",
         offsets.is_array() && offsets.size() <= 4 ? offsets.dump() : detail::describe_json(offsets),
         ", expected [begin, end] with two non-negative integers");
  }
  const auto begin = offsets[0].get<std::uint64_t>();
  const auto end = offsets[1].get<std::uint64_t>();
  if (end < begin) fail(tensor, " has data_offsets [", begin, ", ", end, "] with end < begin");
  if (end > buffer_size) {
    fail(tensor, " has data_offsets [", begin, ", ", end, "] ending beyond the byte buffer of ", buffer_size,
         " bytes (file truncated?)");
  }
  if (end - begin != *expected_bytes) {
    fail(tensor, " has data_offsets [", begin, ", ", end, "] spanning ", end - begin, " bytes, expected ",
         *expected_bytes, " for dtype ", dtype_name(*dtype), " and shape ", format_shape(shape));
  }

  begin_offset = begin;
  // data is set by the caller, which knows where the byte buffer starts.
  return TensorView{name, *dtype, std::move(shape), nullptr, static_cast<std::size_t>(end - begin)};
}

inline SafetensorsFile SafetensorsFile::parse(std::vector<unsigned char> bytes, std::string source_name) {
  SafetensorsFile file;
  file.source_name_ = std::move(source_name);
  file.bytes_ = std::move(bytes);
  const std::uint64_t file_size = file.bytes_.size();

  // Header length: every bound is checked before the value is used as a size.
  if (file_size < 8) {
    file.fail("file is ", file_size, " bytes, too short for the 8-byte header length");
  }
  const std::uint64_t header_size = detail::load_little_endian_u64(file.bytes_.data());
  if (header_size == 0) file.fail("header length is 0, expected a JSON object");
  if (header_size > kMaxHeaderBytes) {
    file.fail("header length ", header_size, " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  }
  if (header_size > file_size - 8) {
    file.fail("header length ", header_size, " exceeds the ", file_size - 8,
              " bytes after the length field (file truncated?)");
  }
  const unsigned char* header_begin = file.bytes_.data() + 8;
  if (header_begin[0] != '{') {
    file.fail("header does not start with '{' (found byte ", static_cast<int>(header_begin[0]),
              "), expected a JSON object");
  }

  // nlohmann::json stops at a NUL byte as if the input ended there, which would silently ignore
  // whatever follows; JSON text never contains one (control characters in strings are escaped).
  if (const void* nul = std::memchr(header_begin, '\0', static_cast<std::size_t>(header_size))) {
    file.fail("header contains a NUL byte at offset ", static_cast<const unsigned char*>(nul) - header_begin,
              ", expected JSON text");
  }

  const nlohmann::json header = file.parse_header_json(header_begin, header_begin + header_size);
  if (!header.is_object()) {
    file.fail("header is ", detail::describe_json(header), ", expected a JSON object");
  }

  const unsigned char* buffer = header_begin + header_size;
  const std::uint64_t buffer_size = file_size - 8 - header_size;
  std::vector<std::uint64_t> begin_offsets;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      file.read_metadata(value);
      continue;
    }
    std::uint64_t begin = 0;
    file.tensors_.push_back(file.read_tensor_entry(key, value, buffer_size, begin));
    file.tensors_.back().data = buffer + begin;
    begin_offsets.push_back(begin);
  }

  // Every byte of the buffer must belong to exactly one tensor: sort by position, then walk.
  std::vector<std::size_t> order(file.tensors_.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const auto key_a = std::make_pair(begin_offsets[a], begin_offsets[a] + file.tensors_[a].bytes);
    const auto key_b = std::make_pair(begin_offsets[b], begin_offsets[b] + file.tensors_[b].bytes);
    return key_a != key_b ? key_a < key_b : file.tensors_[a].name < file.tensors_[b].name;
  });
  std::uint64_t covered = 0;  // bytes [0, covered) belong to the tensors seen so far
  const TensorView* previous = nullptr;
  for (const std::size_t i : order) {
    const TensorView& view = file.tensors_[i];
    const std::uint64_t begin = begin_offsets[i], end = begin + view.bytes;
    if (begin < covered) {
      file.fail("tensor ", detail::quote_name(view.name), " with data_offsets [", begin, ", ", end,
                "] overlaps tensor ", detail::quote_name(previous->name), " ending at ", covered,
                ", expected tensors to occupy disjoint bytes");
    }
    if (begin > covered) {
      file.fail("bytes [", covered, ", ", begin, ") of the byte buffer, before tensor ", detail::quote_name(view.name),
                ", belong to no tensor (hole), expected a fully indexed buffer");
    }
    covered = end;
    previous = &view;
  }
  if (covered != buffer_size) {
    file.fail("bytes [", covered, ", ", buffer_size,
              ") at the end of the byte buffer belong to no tensor (trailing bytes), expected a "
              "fully indexed buffer");
  }

  std::vector<TensorView> sorted;
  sorted.reserve(order.size());
  for (const std::size_t i : order) sorted.push_back(std::move(file.tensors_[i]));
  file.tensors_ = std::move(sorted);
  for (std::size_t i = 0; i < file.tensors_.size(); ++i) {
    file.index_by_name_.emplace(file.tensors_[i].name, i);
  }
  return file;
}

// ------------------------------------------------------------------------------------------------
// Writing.

// One tensor to write. `data` holds numel * dtype_size(dtype) bytes of host-order elements,
// row-major, and must stay valid until write_safetensors returns.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  const void* data;
  std::size_t bytes;
};

// A TensorToWrite viewing `count` values of T (float, double, int32_t, int64_t).
template <class T>
TensorToWrite tensor_to_write(std::string name, std::vector<std::int64_t> shape, const T* values, std::size_t count) {
  return TensorToWrite{std::move(name), dtype_of<T>(), std::move(shape), values, count * sizeof(T)};
}
template <class T>
TensorToWrite tensor_to_write(std::string name, std::vector<std::int64_t> shape, const std::vector<T>& values) {
  return tensor_to_write(std::move(name), std::move(shape), values.data(), values.size());
}
// The view would dangle as soon as the temporary vector dies.
template <class T>
TensorToWrite tensor_to_write(std::string name, std::vector<std::int64_t> shape, std::vector<T>&& values) = delete;

namespace detail {

// The padded header JSON for `tensors` in the given order, after checking them.
// `where` prefixes messages (the destination path).
inline std::string safetensors_header(const std::string& where, const std::vector<TensorToWrite>& tensors,
                                      const std::map<std::string, std::string>& metadata) {
  using nlohmann::json;
  auto fail = [&](const auto&... parts) {
    throw Error(tinyattn::detail::concat("write_safetensors(", where, "): ", parts...));
  };
  // dump() throws on invalid UTF-8; say which string was at fault.
  auto json_string = [&](const std::string& text, const char* what) {
    try {
      return json(text).dump();
    } catch (const json::exception&) {
      fail(what, " ", quote_name(text), " is not valid UTF-8");
    }
    return std::string();
  };

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!first) header += ',';
      first = false;
      header += json_string(key, "metadata key") + ":" + json_string(value, "metadata value");
    }
    header += "}";
  }

  std::map<std::string, std::size_t> position_by_name;
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const TensorToWrite& tensor = tensors[i];
    const std::string label = "tensor " + quote_name(tensor.name);
    if (tensor.name == "__metadata__") fail("'__metadata__' is reserved and cannot name a tensor");
    if (const auto [it, inserted] = position_by_name.emplace(tensor.name, i); !inserted) {
      fail(label, " appears twice (tensors #", it->second, " and #", i, ")");
    }
    const std::optional<std::uint64_t> numel = element_count(tensor.shape);
    const std::optional<std::uint64_t> expected_bytes =
        numel ? checked_multiply(*numel, dtype_size(tensor.dtype)) : std::nullopt;
    if (!expected_bytes) {
      fail(label, " has shape ", format_shape(tensor.shape),
           ", expected non-negative extents whose size in bytes fits 64 bits");
    }
    if (*expected_bytes != tensor.bytes) {
      fail(label, " of dtype ", dtype_name(tensor.dtype), " and shape ", format_shape(tensor.shape), " needs ",
           *expected_bytes, " bytes, got ", tensor.bytes);
    }
    if (tensor.bytes > 0 && tensor.data == nullptr) fail(label, " has no data (null pointer)");

    header += (header.size() > 1 ? "," : "") + json_string(tensor.name, "tensor name");
    header += ":{\"dtype\":\"" + std::string(dtype_name(tensor.dtype)) + "\",\"shape\":[";
    for (std::size_t axis = 0; axis < tensor.shape.size(); ++axis) {
      header += (axis > 0 ? "," : "") + std::to_string(tensor.shape[axis]);
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + tensor.bytes) + "]}";
    offset += tensor.bytes;
  }
  header += "}";
  // Pad so the byte buffer starts 8-byte aligned (8 + header size is a multiple of 8), as the
  // reference writer does: readers may then map elements in place.
  header.append((8 - header.size() % 8) % 8, ' ');
  return header;
}

// Appends the whole file to `sink` (anything with append(const void*, size_t)).
template <class Sink>
void emit_safetensors(Sink& sink, const std::string& header, const std::vector<TensorToWrite>& tensors) {
  unsigned char length[8];
  std::uint64_t header_size = header.size();
  for (unsigned char& byte : length) {
    byte = static_cast<unsigned char>(header_size & 0xFF);
    header_size >>= 8;
  }
  sink.append(length, sizeof length);
  sink.append(header.data(), header.size());
  for (const TensorToWrite& tensor : tensors) {
    append_little_endian(sink, static_cast<const unsigned char*>(tensor.data), tensor.bytes, dtype_size(tensor.dtype));
  }
}

struct VectorSink {
  std::vector<unsigned char>& bytes;
  void append(const void* data, std::size_t size) {
    const auto* begin = static_cast<const unsigned char*>(data);
    bytes.insert(bytes.end(), begin, begin + size);
  }
};

}  // namespace detail

// The bytes of a safetensors file holding `tensors` (in the given order) and `metadata`.
// requires: distinct names other than "__metadata__", valid UTF-8 names and metadata, each
//           tensor's bytes == numel(shape) * dtype_size(dtype); otherwise tinyattn::Error.
// ensures:  SafetensorsFile::parse(result) gives back the same names, dtypes, shapes, values and
//           metadata; the header is padded with spaces to a multiple of 8 bytes.
inline std::vector<unsigned char> serialize_safetensors(const std::vector<TensorToWrite>& tensors,
                                                        const std::map<std::string, std::string>& metadata = {}) {
  const std::string header = detail::safetensors_header("<memory>", tensors, metadata);
  std::vector<unsigned char> bytes;
  detail::VectorSink sink{bytes};
  detail::emit_safetensors(sink, header, tensors);
  return bytes;
}

// Writes serialize_safetensors(tensors, metadata) to `path` atomically (write_file_atomically),
// streaming the tensor bytes without a second copy in memory.
// ensures: throws tinyattn::Error for invalid tensors (before touching the disk), IoError when the
//          file cannot be written; in both cases an existing file at `path` is left untouched.
inline void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  const std::string header = detail::safetensors_header(path, tensors, metadata);
  write_file_atomically(path, [&](ByteSink& sink) { detail::emit_safetensors(sink, header, tensors); });
}

}  // namespace tinyattn::io
