// Tests of tinyattn/io/safetensors.hpp: round trips, the PyTorch-written fixture, and a table of
// malformed files, each rejected with its own message.
#include "../support/scratch_directory.hpp"
#include <doctest/doctest.h>

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tinyattn/io/safetensors.hpp"

namespace fs = std::filesystem;
using tinyattn::io::DType;
using tinyattn::io::FormatError;
using tinyattn::io::SafetensorsFile;
using tinyattn::io::tensor_to_write;
using tinyattn::io::TensorToWrite;
using Shape = std::vector<std::int64_t>;

namespace {

struct Scratch : tinyattn::test::ScratchDirectory {
  Scratch() : ScratchDirectory("tinyattn-safetensors") {}
};

// A file from its parts: 8-byte little-endian `header_length` (by default the header's size), the
// header text, then `buffer_size` bytes of buffer.
std::vector<unsigned char> make_file(const std::string& header, std::size_t buffer_size, std::uint64_t header_length) {
  std::vector<unsigned char> bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<unsigned char>(header_length >> (8 * i)));
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.resize(bytes.size() + buffer_size, 0x5A);
  return bytes;
}
std::vector<unsigned char> make_file(const std::string& header, std::size_t buffer_size) {
  return make_file(header, buffer_size, header.size());
}

std::vector<unsigned char> truncated(std::vector<unsigned char> bytes, std::size_t size) {
  bytes.resize(size);
  return bytes;
}

// A valid two-tensor file: "a" F32 (2) at [0, 8), "b" I32 (3) at [8, 20).
const std::string kTwoTensors =
    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[3],"data_offsets":[8,20]}})";

std::string message_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const FormatError& error) {
    return error.what();
  }
  FAIL("expected tinyattn::io::FormatError");
  return {};
}

template <class T>
std::vector<T> iota_values(std::size_t count, T start) {
  std::vector<T> values(count);
  for (std::size_t i = 0; i < count; ++i) values[i] = static_cast<T>(start + static_cast<T>(i));
  return values;
}

}  // namespace

TEST_CASE("dtype names and sizes") {
  CHECK(tinyattn::io::dtype_name(DType::F32) == "F32");
  CHECK(tinyattn::io::dtype_name(DType::BF16) == "BF16");
  CHECK(tinyattn::io::dtype_size(DType::F64) == 8);
  CHECK(tinyattn::io::dtype_size(DType::I32) == 4);
  CHECK(tinyattn::io::dtype_size(DType::BOOL) == 1);
  CHECK(tinyattn::io::dtype_from_name("I64") == DType::I64);
  CHECK_FALSE(tinyattn::io::dtype_from_name("f32").has_value());
  for (const DType dtype : tinyattn::io::kAllDTypes) {
    CHECK(tinyattn::io::dtype_from_name(tinyattn::io::dtype_name(dtype)) == dtype);
  }
  CHECK(tinyattn::io::format_shape({131, 32}) == "(131, 32)");
  CHECK(tinyattn::io::format_shape({}) == "()");
}

TEST_CASE("write_safetensors -> load round trips F32, F64, I32, I64 of several ranks and metadata") {
  Scratch scratch;
  const std::string path = scratch.file("round_trip.safetensors");

  const auto matrix = iota_values<float>(6, -2.5f);
  const std::vector<double> scalar{3.141592653589793};
  const std::vector<std::int32_t> empty;  // zero-size dimension
  const std::vector<std::int64_t> cube{std::numeric_limits<std::int64_t>::min(), -1, 0, 1, 2, 3, 4,
                                       std::numeric_limits<std::int64_t>::max()};
  const auto vector = iota_values<std::int32_t>(5, -2);
  const std::vector<float> special{std::numeric_limits<float>::infinity(), -0.0f,
                                   std::numeric_limits<float>::denorm_min()};
  const std::vector<float> zero_in_middle;
  const std::map<std::string, std::string> metadata{
      {"seed", "0"}, {"heads", "2"}, {"note", "quotes \" and\nnewlines, ünïcödé"}, {"", "empty key"}};

  // Deliberately not in alphabetical order: the file keeps the order given.
  const std::vector<TensorToWrite> tensors{
      tensor_to_write("z.matrix", {2, 3}, matrix),
      tensor_to_write("scalar", {}, scalar),
      tensor_to_write("empty", {0, 4}, empty),
      tensor_to_write("cube", {2, 2, 2}, cube),
      tensor_to_write("vector", {5}, vector),
      tensor_to_write("special", {3, 1}, special),
      tensor_to_write("zero_in_middle", {2, 0, 3}, zero_in_middle),
  };
  tinyattn::io::write_safetensors(path, tensors, metadata);

  const SafetensorsFile file = SafetensorsFile::load(path);
  CHECK(file.source_name() == path);
  CHECK(file.names() ==
        std::vector<std::string>{"z.matrix", "scalar", "empty", "cube", "vector", "special", "zero_in_middle"});
  CHECK(file.metadata() == metadata);
  CHECK(file.read<float>("z.matrix", {2, 3}) == matrix);
  CHECK(file.read<double>("scalar", {}) == scalar);
  CHECK(file.read<std::int32_t>("empty", {0, 4}).empty());
  CHECK(file.read<std::int64_t>("cube", {2, 2, 2}) == cube);
  CHECK(file.read<std::int32_t>("vector") == vector);
  const auto special_back = file.read<float>("special", {3, 1});
  CHECK(std::isinf(special_back[0]));
  CHECK(std::signbit(special_back[1]));
  CHECK(special_back[2] == std::numeric_limits<float>::denorm_min());
  CHECK(file.read<float>("zero_in_middle", {2, 0, 3}).empty());

  const auto& view = file.tensor("cube");
  CHECK(view.dtype == DType::I64);
  CHECK(view.shape == Shape{2, 2, 2});
  CHECK(view.bytes == 64);
  CHECK(view.numel() == 8);
  CHECK(file.contains("scalar"));
  CHECK_FALSE(file.contains("Scalar"));

  // The serialized bytes are those of the file, the header is space-padded to a multiple of 8 and
  // its JSON is what a plain reader (like Python's safetensors) expects.
  const auto bytes = tinyattn::io::read_file_bytes(path);
  CHECK(bytes == tinyattn::io::serialize_safetensors(tensors, metadata));
  std::uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | bytes[static_cast<std::size_t>(i)];
  CHECK(header_length % 8 == 0);
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_length));
  const auto json = nlohmann::json::parse(header);
  CHECK(json["z.matrix"]["dtype"] == "F32");
  CHECK(json["z.matrix"]["data_offsets"] == nlohmann::json::array({0, 24}));
  CHECK(json["scalar"]["shape"] == nlohmann::json::array());
  CHECK(json["__metadata__"]["seed"] == "0");
  // Raw element bytes are little endian: -2.5f is 0xC0200000.
  const std::size_t buffer_start = 8 + header_length;
  CHECK(bytes[buffer_start + 3] == 0xC0);
  CHECK(bytes[buffer_start + 2] == 0x20);

  // Moving keeps the views valid.
  SafetensorsFile moved = SafetensorsFile::load(path);
  SafetensorsFile target = std::move(moved);
  CHECK(target.read<float>("z.matrix", {2, 3}) == matrix);
}

TEST_CASE("a file without tensors or metadata round trips") {
  const auto bytes = tinyattn::io::serialize_safetensors({});
  const SafetensorsFile file = SafetensorsFile::parse(bytes, "empty.safetensors");
  CHECK(file.names().empty());
  CHECK(file.metadata().empty());
  CHECK(bytes.size() == 16);  // length + "{}" padded to 8
}

TEST_CASE("the PyTorch-written golden fixture loads") {
  const SafetensorsFile file = SafetensorsFile::load(TINYATTN_TEST_DATA_DIR "/golden_reference.safetensors");
  CHECK(file.names().size() == 42);
  CHECK(file.names().front() == "init._token_embedding._weight");  // first bytes of the buffer
  CHECK(file.metadata().at("seed") == "0");
  CHECK(file.metadata().at("heads") == "2");
  CHECK(file.metadata().at("d_model") == "32");

  const auto embedding = file.read<float>("init._token_embedding._weight", {131, 32});
  CHECK(std::all_of(embedding.begin(), embedding.end(), [](float v) { return std::isfinite(v); }));
  CHECK(std::any_of(embedding.begin(), embedding.end(), [](float v) { return v != 0.0f; }));

  const auto train_indices = file.read<std::int32_t>("train_indices", {10922});
  CHECK(std::all_of(train_indices.begin(), train_indices.end(), [](std::int32_t i) { return i >= 0; }));

  // Each attention pattern row is a softmax: finite, in [0, 1], summing to 1.
  const auto pattern = file.read<float>("probe.attention_pattern", {64, 2, 4, 4});
  REQUIRE(pattern.size() == 64 * 2 * 4 * 4);
  for (std::size_t row = 0; row < pattern.size() / 4; ++row) {
    float sum = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const float p = pattern[row * 4 + k];
      CHECK(std::isfinite(p));
      CHECK(p >= 0.0f);
      sum += p;
    }
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
  }
  CHECK(file.tensor("init.train_loss").shape == Shape{1});
  CHECK(std::isfinite(file.read<float>("init.train_loss", {1})[0]));

  // The message a model loader shows for a mismatched checkpoint.
  CHECK(message_of([&] {
          file.read<float>("init._token_embedding._weight", {17, 12});
        }) == TINYATTN_TEST_DATA_DIR
        "/golden_reference.safetensors: tensor 'init._token_embedding._weight' has shape "
        "(131, 32), expected (17, 12)");
}

TEST_CASE("malformed files are rejected with a message naming file, tensor, expected and found") {
  struct BrokenCase {
    const char* what;
    std::vector<unsigned char> bytes;
    const char* message_part;
  };
  const auto valid = make_file(kTwoTensors, 20);
  const std::uint64_t huge = std::uint64_t{1} << 62;
  const BrokenCase cases[] = {
      {"empty file", {}, "file is 0 bytes, too short for the 8-byte header length"},
      {"shorter than 8 bytes", {1, 0, 0}, "file is 3 bytes, too short"},
      {"header cut", truncated(valid, 30), "header length 108 exceeds the 22 bytes after the length field"},
      {"data cut", truncated(valid, valid.size() - 4),
       "tensor 'b' has data_offsets [8, 20] ending beyond the byte buffer of 16 bytes"},
      {"huge header length 2^62", make_file(kTwoTensors, 20, huge),
       "header length 4611686018427387904 exceeds the limit of 100000000 bytes"},
      {"header length 0", make_file("", 0), "header length is 0"},
      {"header length 2^64 - 1", make_file("{}", 0, ~std::uint64_t{0}), "exceeds the limit"},
      {"header not starting with {", make_file(" {}", 0), "header does not start with '{'"},
      {"JSON array instead of object", make_file("[1,2]", 0), "header does not start with '{' (found byte 91)"},
      {"bad JSON", make_file(R"({"a": {"dtype": )", 0), "header is not valid JSON"},
      {"text after the object", make_file("{} x", 0), "header is not valid JSON"},
      {"invalid UTF-8", make_file("{\"\xff\":1}", 0), "header is not valid JSON"},
      {"padding with NUL bytes", make_file(std::string("{}\0\0", 4), 0), "header contains a NUL byte at offset 2"},
      {"NUL hiding a second object",
       make_file(std::string("{}") + '\0' + R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4),
       "header contains a NUL byte at offset 2"},
      {"duplicate tensor name",
       make_file(
           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
           8),
       "duplicate key 'a' in the header JSON (two entries for one tensor name)"},
      {"duplicate field", make_file(R"({"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}})", 4),
       "duplicate key 'dtype'"},
      {"duplicate metadata key", make_file(R"({"__metadata__":{"k":"1","k":"2"}})", 0), "duplicate key 'k'"},
      {"deep nesting", make_file("{\"a\":" + std::string(40, '[') + std::string(40, ']') + "}", 0),
       "header JSON nests deeper than 16 levels"},
      {"metadata not an object", make_file(R"({"__metadata__":["k"]})", 0),
       "__metadata__ is an array of 1 elements, expected an object of strings"},
      {"metadata value not a string", make_file(R"({"__metadata__":{"seed":0}})", 0),
       "__metadata__ entry 'seed' is 0, expected a string"},
      {"entry not an object", make_file(R"({"a":[0,4]})", 0),
       "tensor 'a' is an array of 2 elements, expected an object"},
      {"missing field", make_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4),
       "tensor 'a' has no field 'shape'"},
      {"extra field", make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"stride":[1]}})", 4),
       "tensor 'a' has unexpected field 'stride'"},
      {"wrong dtype string", make_file(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", 4),
       "tensor 'a' has unknown dtype 'F33', expected one of BOOL, U8"},
      {"dtype not a string", make_file(R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4),
       "tensor 'a' has dtype 4, expected a string"},
      {"shape not an array", make_file(R"({"a":{"dtype":"F32","shape":1,"data_offsets":[0,4]}})", 4),
       "tensor 'a' has shape 1, expected an array of non-negative integers"},
      {"negative shape entry", make_file(R"({"a":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,4]}})", 4),
       "tensor 'a' has shape entry 1 = -1, expected a non-negative integer"},
      {"fractional shape entry", make_file(R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", 4),
       "tensor 'a' has shape entry 0 = 1.0"},
      {"shape entry above 2^63",
       make_file(R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,4]}})", 4),
       "shape entry 0 = 9223372036854775808"},
      {"element count overflow",
       make_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4),
       "tensor 'a' has shape (4294967296, 4294967296) whose size in bytes overflows 64 bits"},
      {"byte count overflow",
       make_file(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}})", 4),
       "overflows 64 bits"},
      {"data_offsets with one entry", make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}})", 4),
       "tensor 'a' has data_offsets [4], expected [begin, end]"},
      {"data_offsets negative", make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4),
       "tensor 'a' has data_offsets [-4,0], expected [begin, end] with two non-negative integers"},
      {"data_offsets not numbers", make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":"0-4"}})", 4),
       "tensor 'a' has data_offsets the string '0-4'"},
      {"offsets out of range", make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 4),
       "tensor 'a' has data_offsets [4, 8] ending beyond the byte buffer of 4 bytes"},
      {"offsets near 2^64",
       make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551615]}})", 4),
       "ending beyond the byte buffer"},
      {"end < begin", make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4),
       "tensor 'a' has data_offsets [4, 0] with end < begin"},
      {"size mismatch", make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
       "tensor 'a' has data_offsets [0, 8] spanning 8 bytes, expected 12 for dtype F32 and shape (3)"},
      {"overlapping tensors",
       make_file(
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
           12),
       "tensor 'b' with data_offsets [4, 12] overlaps tensor 'a' ending at 8"},
      {"identical offsets",
       make_file(
           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
           4),
       "tensor 'b' with data_offsets [0, 4] overlaps tensor 'a'"},
      {"empty tensor inside another",
       make_file(
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
           8),
       "tensor 'e' with data_offsets [4, 4] overlaps tensor 'a'"},
      {"hole in the buffer",
       make_file(
           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
           12),
       "bytes [4, 8) of the byte buffer, before tensor 'b', belong to no tensor (hole)"},
      {"hole at the start", make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
       "bytes [0, 4) of the byte buffer, before tensor 'a', belong to no tensor"},
      {"trailing bytes", make_file(kTwoTensors, 24),
       "bytes [20, 24) at the end of the byte buffer belong to no tensor"},
      {"buffer without tensors", make_file("{}", 3), "bytes [0, 3) at the end of the byte buffer"},
      {"huge tensor name is shortened in messages",
       make_file("{\"" + std::string(5000, 'n') + "\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}", 0),
       "...' (5000 bytes) has unknown dtype 'X'"},
  };
  for (const BrokenCase& broken : cases) {
    const std::string what = broken.what;
    CAPTURE(what);
    const std::string message = message_of([&] { SafetensorsFile::parse(broken.bytes, "broken.safetensors"); });
    CHECK_MESSAGE(message.find(broken.message_part) != std::string::npos, message);
    CHECK_MESSAGE(message.rfind("broken.safetensors: ", 0) == 0, message);
    CHECK(message.size() < 1000);
  }
}

TEST_CASE("typed reads check name, dtype and shape") {
  const SafetensorsFile file = SafetensorsFile::parse(make_file(kTwoTensors, 20), "w.safetensors");
  CHECK(file.read<float>("a", {2}).size() == 2);
  CHECK(message_of([&] { file.read<float>("b", {3}); }) == "w.safetensors: tensor 'b' has dtype I32, expected F32");
  CHECK(message_of([&] { file.read<std::int64_t>("b"); }) == "w.safetensors: tensor 'b' has dtype I32, expected I64");
  CHECK(message_of([&] {
          file.read<float>("a", {1, 2});
        }) == "w.safetensors: tensor 'a' has shape (2), expected (1, 2)");
  CHECK(message_of([&] { file.read<float>("a", {}); }) == "w.safetensors: tensor 'a' has shape (2), expected ()");
  CHECK(message_of([&] { file.read<float>("missing", {2}); }) ==
        "w.safetensors: no tensor 'missing' (the file has 2 tensors: 'a', 'b')");
  CHECK(message_of([&] { file.tensor("missing"); }).find("no tensor 'missing'") != std::string::npos);
  // Every error derives from tinyattn::Error.
  CHECK_THROWS_AS(file.read<double>("a"), tinyattn::Error);
}

TEST_CASE("padded headers, reordered entries and all dtypes of the format are accepted") {
  // Header entries in any order (offsets decide the order of names()), trailing spaces, every
  // dtype known to the format, zero-size tensors sharing an offset.
  const std::string header = R"({"z":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
                             R"("__metadata__":{"format":"pt"},)"
                             R"("a":{"dtype":"U8","shape":[3],"data_offsets":[4,7]},)"
                             R"("e1":{"dtype":"F64","shape":[0],"data_offsets":[7,7]},)"
                             R"("e2":{"dtype":"F16","shape":[5,0],"data_offsets":[7,7]},)"
                             R"("b":{"dtype":"BOOL","shape":[1],"data_offsets":[7,8]}})"
                             "        ";
  const SafetensorsFile file = SafetensorsFile::parse(make_file(header, 8), "ok.safetensors");
  CHECK(file.names() == std::vector<std::string>{"z", "a", "e1", "e2", "b"});
  CHECK(file.metadata().at("format") == "pt");
  CHECK(file.tensor("z").dtype == DType::BF16);
  CHECK(file.tensor("e2").bytes == 0);
  CHECK(file.tensor("b").data == file.tensor("a").data + 3);
}

TEST_CASE("write_safetensors rejects invalid tensors before touching the disk") {
  Scratch scratch;
  const std::string path = scratch.file("bad.safetensors");
  const std::vector<float> six(6);
  const auto error_of = [&](const std::vector<TensorToWrite>& tensors,
                            const std::map<std::string, std::string>& metadata = {}) {
    try {
      tinyattn::io::write_safetensors(path, tensors, metadata);
    } catch (const tinyattn::Error& error) {
      return std::string(error.what());
    }
    FAIL("expected tinyattn::Error");
    return std::string();
  };
  CHECK(error_of({tensor_to_write("w", {6}, six), tensor_to_write("v", {6}, six), tensor_to_write("w", {2, 3}, six)})
            .find("tensor 'w' appears twice (tensors #0 and #2)") != std::string::npos);
  CHECK(error_of({tensor_to_write("w", {2, 2}, six)})
            .find("tensor 'w' of dtype F32 and shape (2, 2) needs 16 bytes, got 24") != std::string::npos);
  CHECK(error_of({tensor_to_write("w", {-6}, six)}).find("has shape (-6)") != std::string::npos);
  CHECK(error_of({tensor_to_write("__metadata__", {6}, six)}).find("reserved") != std::string::npos);
  CHECK(error_of({tensor_to_write("bad\xff", {6}, six)}).find("is not valid UTF-8") != std::string::npos);
  CHECK(error_of({}, {{"k", "\xc3"}}).find("metadata value") != std::string::npos);
  CHECK(error_of({}, {{"k\xc3", "v"}}).find("metadata key") != std::string::npos);
  CHECK(error_of({TensorToWrite{"n", DType::F32, {2}, nullptr, 8}}).find("null pointer") != std::string::npos);
  CHECK(error_of({tensor_to_write("w", {6}, six)}, {{"k", "\xc3"}}).rfind("write_safetensors(" + path + "): ", 0) == 0);
  CHECK(fs::is_empty(scratch.path));
}

TEST_CASE("the fuzzing seed corpus: valid_* files parse, broken_* files are rejected") {
  // tests/fuzz/corpus/safetensors is written by tests/fuzz/make_safetensors_seed_corpus.
  const fs::path directory = fs::path(TINYATTN_TEST_DATA_DIR) / ".." / "fuzz" / "corpus" / "safetensors";
  int valid = 0, broken = 0;
  for (const auto& entry : fs::directory_iterator(directory)) {
    const std::string name = entry.path().filename().string();
    CAPTURE(name);
    if (name.rfind("valid_", 0) == 0) {
      const SafetensorsFile file = SafetensorsFile::load(entry.path().string());
      for (const auto& view : file.tensors()) CHECK(view.bytes == view.numel() * tinyattn::io::dtype_size(view.dtype));
      ++valid;
    } else {
      CHECK_THROWS_AS(SafetensorsFile::load(entry.path().string()), FormatError);
      ++broken;
    }
  }
  CHECK(valid >= 4);
  CHECK(broken >= 4);
}

TEST_CASE("inputs kept from fuzzing (tests/data/fuzz_regressions) parse or throw FormatError") {
  // Each file there once crashed or misbehaved; it must now either parse into readable views or
  // be rejected with FormatError. The directory may be empty or absent.
  const fs::path directory = fs::path(TINYATTN_TEST_DATA_DIR) / "fuzz_regressions";
  if (!fs::exists(directory)) return;
  for (const auto& entry : fs::directory_iterator(directory)) {
    CAPTURE(entry.path().string());
    try {
      const SafetensorsFile file = SafetensorsFile::load(entry.path().string());
      for (const auto& view : file.tensors()) {
        if (view.dtype == DType::F32) CHECK(file.read<float>(view.name, view.shape).size() == view.numel());
      }
    } catch (const FormatError&) {
    }
  }
}
