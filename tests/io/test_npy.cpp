// Tests of tinyattn/io/npy.hpp: the exact header layout NumPy expects, round trips, clear errors.
#include "../support/scratch_directory.hpp"
#include <doctest/doctest.h>

#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "tinyattn/io/npy.hpp"

namespace fs = std::filesystem;
using tinyattn::io::FormatError;
using tinyattn::io::NpyArray;
using tinyattn::io::parse_npy;
using tinyattn::io::read_npy;
using tinyattn::io::write_npy;

namespace {

struct Scratch : tinyattn::test::ScratchDirectory {
  Scratch() : ScratchDirectory("tinyattn-npy") {}
};

std::vector<unsigned char> bytes_of(const std::string& text) {
  return std::vector<unsigned char>(text.begin(), text.end());
}

// The dict text of a preamble: after the 10 fixed bytes, without padding and newline.
std::string dict_of(const std::string& preamble) {
  const std::string dict = preamble.substr(10);
  return dict.substr(0, dict.find_last_not_of(" \n") + 1);
}

std::string format_error_message(const std::vector<unsigned char>& bytes) {
  try {
    parse_npy<float>(bytes, "bad.npy");
  } catch (const FormatError& error) {
    return error.what();
  }
  FAIL("expected FormatError");
  return {};
}

}  // namespace

TEST_CASE("npy preamble: magic, version 1.0, 64-byte alignment, descr and shape text") {
  const std::string preamble = tinyattn::io::npy_preamble<float>({2, 3, 4});
  CHECK(preamble.substr(0, 6) == std::string("\x93NUMPY", 6));
  CHECK(preamble[6] == 1);
  CHECK(preamble[7] == 0);
  const std::size_t header_length =
      static_cast<unsigned char>(preamble[8]) | (static_cast<unsigned char>(preamble[9]) << 8);
  CHECK(header_length + 10 == preamble.size());
  CHECK(preamble.size() % 64 == 0);
  CHECK(preamble.back() == '\n');
  CHECK(dict_of(preamble) == "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }");

  CHECK(dict_of(tinyattn::io::npy_preamble<float>({})) == "{'descr': '<f4', 'fortran_order': False, 'shape': (), }");
  CHECK(dict_of(tinyattn::io::npy_preamble<std::int32_t>({7})) ==
        "{'descr': '<i4', 'fortran_order': False, 'shape': (7,), }");
  CHECK(dict_of(tinyattn::io::npy_preamble<double>({0, 5})) ==
        "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 5), }");
  CHECK(dict_of(tinyattn::io::npy_preamble<std::int64_t>({1})) ==
        "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }");
  // A long shape needs more than one 64-byte block; alignment still holds.
  const std::vector<std::int64_t> long_shape(20, 123456);
  CHECK(tinyattn::io::npy_preamble<float>(long_shape).size() % 64 == 0);
}

TEST_CASE("npy files round trip for float and int32 of several ranks") {
  Scratch scratch;

  const std::vector<float> matrix{1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
  write_npy(scratch.file("matrix.npy"), matrix, {2, 3});
  const NpyArray<float> matrix_back = read_npy<float>(scratch.file("matrix.npy"));
  CHECK(matrix_back.shape == std::vector<std::int64_t>{2, 3});
  CHECK(matrix_back.values == matrix);
  const std::size_t preamble_size = tinyattn::io::npy_preamble<float>({2, 3}).size();
  CHECK(fs::file_size(scratch.file("matrix.npy")) == preamble_size + matrix.size() * sizeof(float));

  const std::vector<std::int32_t> cube{-7, 0, 1, 2147483647, -2147483647 - 1, 5, 6, 8};
  write_npy(scratch.file("cube.npy"), cube, {2, 2, 2});
  const NpyArray<std::int32_t> cube_back = read_npy<std::int32_t>(scratch.file("cube.npy"));
  CHECK(cube_back.shape == std::vector<std::int64_t>{2, 2, 2});
  CHECK(cube_back.values == cube);

  const std::vector<float> scalar{42.0f};
  write_npy(scratch.file("scalar.npy"), scalar, {});
  CHECK(read_npy<float>(scratch.file("scalar.npy")).shape.empty());
  CHECK(read_npy<float>(scratch.file("scalar.npy")).values == scalar);

  const std::vector<float> empty;
  write_npy(scratch.file("empty.npy"), empty, {3, 0});
  CHECK(read_npy<float>(scratch.file("empty.npy")).shape == std::vector<std::int64_t>{3, 0});
  CHECK(read_npy<float>(scratch.file("empty.npy")).values.empty());

  const std::vector<double> vector{0.1, 0.2};
  write_npy(scratch.file("vector.npy"), vector, {2});
  CHECK(read_npy<double>(scratch.file("vector.npy")).values == vector);

  // Element bytes are little endian.
  const auto raw = tinyattn::io::read_file_bytes(scratch.file("cube.npy"));
  const std::size_t data_start = tinyattn::io::npy_preamble<std::int32_t>({2, 2, 2}).size();
  CHECK(raw[data_start] == 0xF9);  // -7
  CHECK(raw[data_start + 1] == 0xFF);
}

TEST_CASE("write_npy rejects a shape that does not match the values") {
  Scratch scratch;
  const std::vector<float> values(5);
  CHECK_THROWS_WITH_AS(write_npy(scratch.file("x.npy"), values, {2, 3}),
                       doctest::Contains("shape (2, 3) does not match the 5 values"), tinyattn::Error);
  CHECK_THROWS_WITH_AS(write_npy(scratch.file("x.npy"), values.data(), {-1, 5}), doctest::Contains("negative extent"),
                       tinyattn::Error);
  CHECK_FALSE(fs::exists(scratch.file("x.npy")));
}

TEST_CASE("read_npy reads files in the layout NumPy writes and rejects everything else clearly") {
  // Written by numpy.save(np.arange(3, dtype='<f4')) — dict text and padding as NumPy does it.
  const std::string numpy_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
  std::string numpy_header = numpy_dict;
  numpy_header.append((64 - (10 + numpy_dict.size() + 1) % 64) % 64, ' ');
  numpy_header += '\n';
  const auto with_header = [](const std::string& dict, unsigned major, std::size_t data_bytes) {
    std::string text("\x93NUMPY", 6);
    text += static_cast<char>(major);
    text += '\0';
    text += static_cast<char>(dict.size() & 0xFF);
    text += static_cast<char>(dict.size() >> 8);
    if (major > 1) text += std::string(2, '\0');
    text += dict;
    text += std::string(data_bytes, '\0');
    return bytes_of(text);
  };

  const auto good = with_header(numpy_header, 1, 12);
  CHECK(parse_npy<float>(good, "good.npy").shape == std::vector<std::int64_t>{3});
  // Keys in another order, double quotes and version 2.0 are fine too.
  CHECK(parse_npy<float>(with_header("{\"shape\": (1, 3), \"fortran_order\": False, \"descr\": '<f4'}\n", 2, 12),
                         "v2.npy")
            .shape == std::vector<std::int64_t>{1, 3});

  struct BrokenCase {
    const char* what;
    std::vector<unsigned char> bytes;
    const char* message_part;
  };
  const BrokenCase cases[] = {
      {"empty file", {}, "not a .npy file"},
      {"wrong magic", bytes_of("\x93NUMPZ\x01\x00\x00\x00"), "not a .npy file"},
      {"version 4.0", with_header(numpy_header, 4, 12), "npy format version 4.0, expected 1.0"},
      {"header length beyond the file",
       [&] {
         auto b = good;
         b.resize(40);
         return b;
       }(),
       "exceeds the 30 bytes that follow"},
      {"big-endian descr", with_header("{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }\n", 1, 12),
       "npy descr is '>f4', expected '<f4'"},
      {"int32 read as float", with_header("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }\n", 1, 12),
       "npy descr is '<i4', expected '<f4'"},
      {"fortran order", with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }\n", 1, 12),
       "fortran_order is True, expected False"},
      {"missing shape", with_header("{'descr': '<f4', 'fortran_order': False}\n", 1, 12), "lacks 'shape'"},
      {"negative extent", with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }\n", 1, 12),
       "shape has no non-negative integer"},
      {"unknown key", with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}\n", 1, 12),
       "unexpected key 'x'"},
      {"unterminated dict", with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3,)", 1, 12),
       "expected '}'"},
      {"huge extent",
       with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", 1, 0),
       "exceeds 2^63 - 1"},
      {"element count overflow",
       with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n", 1, 0),
       "overflows 64 bits"},
      {"data too short", with_header(numpy_header, 1, 8), "data is 8 bytes, expected 12 for shape (3)"},
      {"data too long", with_header(numpy_header, 1, 16), "data is 16 bytes, expected 12"},
  };
  for (const BrokenCase& broken : cases) {
    const std::string what = broken.what;
    CAPTURE(what);
    const std::string message = format_error_message(broken.bytes);
    CHECK_MESSAGE(message.find(broken.message_part) != std::string::npos, message);
    CHECK(message.rfind("bad.npy: ", 0) == 0);
  }
}

TEST_CASE("read_npy of a missing file throws IoError naming it") {
  CHECK_THROWS_WITH_AS(read_npy<float>("/nonexistent-dir/x.npy"), doctest::Contains("/nonexistent-dir/x.npy"),
                       tinyattn::io::IoError);
}
