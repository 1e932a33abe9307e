// tinyattn/io/npy.hpp — NumPy .npy files (format version 1.0) for float, double, int32 and int64.
//
// Layout (numpy.lib.format):
//   "\x93NUMPY"  magic, 6 bytes
//   1, 0         format version 1.0
//   u16 LE       header length H
//   H bytes      Python dict literal, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//                padded with spaces and ending in '\n' so that 10 + H is a multiple of 64
//   data         little-endian elements, C (row-major) order
//
// numpy.load reads what write_npy writes; read_npy reads C-ordered little-endian files of the four
// element types written by NumPy (versions 1.0, 2.0 and 3.0 of the format) or by write_npy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tinyattn/core/config.hpp"
#include "tinyattn/io/atomic_file.hpp"
#include "tinyattn/io/safetensors.hpp"  // FormatError, dtype_of, format_shape, little-endian helpers

namespace tinyattn::io {

// The NumPy type string of T: "<f4" (float), "<f8" (double), "<i4" (int32_t), "<i8" (int64_t), "|u1"
// (uint8_t).
template <class T>
constexpr std::string_view npy_descr() {
  constexpr DType dtype = dtype_of<T>();  // rejects other types at compile time
  if constexpr (dtype == DType::F32) {
    return "<f4";
  } else if constexpr (dtype == DType::F64) {
    return "<f8";
  } else if constexpr (dtype == DType::I32) {
    return "<i4";
  } else if constexpr (dtype == DType::U8) {
    return "|u1";
  } else {
    return "<i8";
  }
}

// A NumPy shape tuple: "()", "(5,)", "(2, 3)".
inline std::string npy_shape_tuple(const std::vector<std::int64_t>& shape) {
  if (shape.size() == 1) return "(" + std::to_string(shape[0]) + ",)";
  return format_shape(shape);
}

// The complete preamble (magic, version, length, padded dict) of a version 1.0 file of T.
// requires: every extent >= 0; the dict fits the 65535 bytes a 1.0 header allows.
// ensures:  result.size() % 64 == 0 and result ends with '\n'.
template <class T>
std::string npy_preamble(const std::vector<std::int64_t>& shape) {
  std::string dict = "{'descr': '" + std::string(npy_descr<T>()) +
                     "', 'fortran_order': False, 'shape': " + npy_shape_tuple(shape) + ", }";
  constexpr std::size_t kFixedPart = 10;                      // magic 6 + version 2 + length 2
  const std::size_t unpadded = kFixedPart + dict.size() + 1;  // + '\n'
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  require(dict.size() <= 0xFFFF, "npy: the header for shape ", format_shape(shape), " is ", dict.size(),
          " bytes, expected at most 65535 (format 1.0)");
  std::string preamble("\x93NUMPY\x01\x00", 8);
  preamble += static_cast<char>(dict.size() & 0xFF);
  preamble += static_cast<char>(dict.size() >> 8);
  return preamble + dict;
}

// Writes `values` (row-major, product(shape) elements of T) as a .npy file, atomically.
// requires: every extent >= 0 and `values` points to product(shape) elements; else tinyattn::Error.
// ensures:  numpy.load(path) gives an array of dtype npy_descr<T>() and this shape; IoError when the
//           file cannot be written, leaving an existing file untouched.
template <class T>
void write_npy(const std::string& path, const T* values, const std::vector<std::int64_t>& shape) {
  const std::optional<std::uint64_t> numel = detail::element_count(shape);
  const std::optional<std::uint64_t> bytes = numel ? detail::checked_multiply(*numel, sizeof(T)) : std::nullopt;
  require(bytes.has_value(), "write_npy(", path, "): shape ", format_shape(shape),
          " has a negative extent or too many elements");
  require(values != nullptr || *bytes == 0, "write_npy(", path, "): no data (null pointer)");
  const std::string preamble = npy_preamble<T>(shape);
  write_file_atomically(path, [&](ByteSink& sink) {
    sink.append(preamble);
    detail::append_little_endian(sink, reinterpret_cast<const unsigned char*>(values), static_cast<std::size_t>(*bytes),
                                 sizeof(T));
  });
}

// As above; checks that values.size() is the product of shape.
template <class T>
void write_npy(const std::string& path, const std::vector<T>& values, const std::vector<std::int64_t>& shape) {
  const std::optional<std::uint64_t> numel = detail::element_count(shape);
  require(numel.has_value() && *numel == values.size(), "write_npy(", path, "): shape ", format_shape(shape),
          " does not match the ", values.size(), " values given");
  write_npy(path, values.data(), shape);
}

// A .npy file's content.
template <class T>
struct NpyArray {
  std::vector<std::int64_t> shape;
  std::vector<T> values;  // row-major, product(shape) elements
};

namespace detail {

// A minimal reader for the Python dict literal NumPy writes: string keys, values that are strings,
// True/False, or tuples of integers. Anything else is a FormatError.
class NpyDictParser {
 public:
  NpyDictParser(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  struct Entries {
    std::optional<std::string> descr;
    std::optional<bool> fortran_order;
    std::optional<std::vector<std::int64_t>> shape;
  };

  Entries parse() {
    Entries entries;
    expect('{');
    skip_spaces();
    while (peek() != '}') {
      const std::string key = parse_string();
      expect(':');
      skip_spaces();
      if (key == "descr") {
        entries.descr = parse_string();
      } else if (key == "fortran_order") {
        entries.fortran_order = parse_bool();
      } else if (key == "shape") {
        entries.shape = parse_tuple();
      } else {
        fail("unexpected key ", quote_name(key), ", expected descr, fortran_order and shape");
      }
      skip_spaces();
      if (peek() != ',') break;
      ++position_;
      skip_spaces();
    }
    expect('}');
    skip_spaces();
    if (position_ != text_.size()) fail("unexpected text after the header dict");
    return entries;
  }

 private:
  template <class... Parts>
  [[noreturn]] void fail(const Parts&... parts) const {
    throw FormatError(tinyattn::detail::concat(source_, ": npy header ", parts...));
  }
  char peek() const { return position_ < text_.size() ? text_[position_] : '\0'; }
  void skip_spaces() {
    while (position_ < text_.size() && (text_[position_] == ' ' || text_[position_] == '\n')) ++position_;
  }
  void expect(char wanted) {
    skip_spaces();
    if (peek() != wanted) {
      fail("has ", position_ < text_.size() ? quote_name(std::string(1, peek())) : "the end", " at byte ", position_,
           ", expected '", wanted, "'");
    }
    ++position_;
  }
  std::string parse_string() {
    skip_spaces();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("has no quoted string at byte ", position_);
    const std::size_t end = text_.find(quote, position_ + 1);
    if (end == std::string_view::npos) fail("has an unterminated string at byte ", position_);
    std::string value(text_.substr(position_ + 1, end - position_ - 1));
    position_ = end + 1;
    return value;
  }
  bool parse_bool() {
    for (const bool value : {true, false}) {
      const std::string_view literal = value ? "True" : "False";
      if (text_.substr(position_, literal.size()) == literal) {
        position_ += literal.size();
        return value;
      }
    }
    fail("fortran_order is neither True nor False");
  }
  std::vector<std::int64_t> parse_tuple() {
    expect('(');
    std::vector<std::int64_t> shape;
    skip_spaces();
    while (peek() != ')') {
      std::uint64_t extent = 0;
      const std::size_t start = position_;
      while (peek() >= '0' && peek() <= '9') {
        const auto digit = static_cast<std::uint64_t>(peek() - '0');
        if (extent > (static_cast<std::uint64_t>(INT64_MAX) - digit) / 10) {
          fail("shape entry at byte ", start, " exceeds 2^63 - 1");
        }
        extent = extent * 10 + digit;
        ++position_;
      }
      if (position_ == start) fail("shape has no non-negative integer at byte ", start);
      if (peek() == 'L') ++position_;  // Python 2 long literal
      shape.push_back(static_cast<std::int64_t>(extent));
      skip_spaces();
      if (peek() != ',') break;
      ++position_;
      skip_spaces();
    }
    expect(')');
    return shape;
  }

  std::string_view text_;
  const std::string& source_;
  std::size_t position_ = 0;
};

}  // namespace detail

// Parses .npy bytes holding elements of T; `source_name` is used in messages.
// ensures: the magic, version (1.0, 2.0 or 3.0), descr == npy_descr<T>(), fortran_order False,
//          shape and file size are all checked; otherwise FormatError naming source and field.
template <class T>
NpyArray<T> parse_npy(const std::vector<unsigned char>& bytes, const std::string& source_name) {
  auto fail = [&](const auto&... parts) { throw FormatError(tinyattn::detail::concat(source_name, ": ", parts...)); };
  constexpr std::string_view kMagic("\x93NUMPY", 6);
  if (bytes.size() < 10 || std::string_view(reinterpret_cast<const char*>(bytes.data()), 6) != kMagic) {
    fail("not a .npy file (expected the magic \\x93NUMPY at the start)");
  }
  const unsigned major = bytes[6], minor = bytes[7];
  if ((major < 1 || major > 3) || minor != 0) {
    fail("npy format version ", major, ".", minor, ", expected 1.0, 2.0 or 3.0");
  }
  // Version 1.0 stores the header length in 2 bytes, 2.0 and 3.0 in 4.
  const std::size_t length_bytes = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + length_bytes) fail("file is ", bytes.size(), " bytes, truncated in the header length");
  std::uint64_t header_size = 0;
  for (std::size_t i = length_bytes; i-- > 0;) header_size = (header_size << 8) | bytes[8 + i];
  const std::uint64_t data_start = 8 + length_bytes + header_size;
  if (data_start > bytes.size()) {
    fail("header length ", header_size, " exceeds the ", bytes.size() - 8 - length_bytes,
         " bytes that follow (file truncated?)");
  }
  const std::string_view dict(reinterpret_cast<const char*>(bytes.data()) + 8 + length_bytes,
                              static_cast<std::size_t>(header_size));
  const auto entries = detail::NpyDictParser(dict, source_name).parse();
  if (!entries.descr || !entries.fortran_order || !entries.shape) {
    fail("npy header lacks ", !entries.descr ? "'descr'" : !entries.fortran_order ? "'fortran_order'" : "'shape'");
  }
  if (*entries.descr != npy_descr<T>()) {
    fail("npy descr is ", detail::quote_name(*entries.descr), ", expected '", npy_descr<T>(), "'");
  }
  if (*entries.fortran_order) fail("npy fortran_order is True, expected False (C order)");
  const std::optional<std::uint64_t> numel = detail::element_count(*entries.shape);
  const std::optional<std::uint64_t> data_bytes = numel ? detail::checked_multiply(*numel, sizeof(T)) : std::nullopt;
  if (!data_bytes) fail("npy shape ", format_shape(*entries.shape), " overflows 64 bits");
  if (bytes.size() - data_start != *data_bytes) {
    fail("data is ", bytes.size() - data_start, " bytes, expected ", *data_bytes, " for shape ",
         format_shape(*entries.shape), " of '", npy_descr<T>(), "'");
  }
  return NpyArray<T>{*entries.shape,
                     detail::decode_little_endian<T>(bytes.data() + data_start, static_cast<std::size_t>(*numel))};
}

// Reads the .npy file at `path` (see parse_npy); IoError when it cannot be read.
template <class T>
NpyArray<T> read_npy(const std::string& path) {
  return parse_npy<T>(read_file_bytes(path), path);
}

}  // namespace tinyattn::io
