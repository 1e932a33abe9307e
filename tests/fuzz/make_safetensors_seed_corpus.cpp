// Writes the seed corpus of fuzz_safetensors: a few small valid files (written by
// write_safetensors) and a few broken ones (edited bytes), each well under 4 KB.
//
// Usage: make_safetensors_seed_corpus <directory>     (normally tests/fuzz/corpus/safetensors)
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "tinyattn/io/safetensors.hpp"

namespace {

using tinyattn::io::tensor_to_write;
using tinyattn::io::TensorToWrite;

// A file from a raw header and buffer size; the buffer is filled with a recognisable pattern.
std::vector<unsigned char> raw_file(const std::string& header, std::size_t buffer_size) {
  std::vector<unsigned char> bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<unsigned char>(header.size() >> (8 * i)));
  bytes.insert(bytes.end(), header.begin(), header.end());
  for (std::size_t i = 0; i < buffer_size; ++i) bytes.push_back(static_cast<unsigned char>(i * 37));
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus directory>\n", argv[0]);
    return 2;
  }
  const std::string directory = argv[1];
  const auto save = [&](const std::string& name, const std::vector<unsigned char>& bytes) {
    tinyattn::io::write_file_atomically(directory + "/" + name, bytes);
  };

  // Valid files.
  const std::vector<float> embedding{0.5f, -1.0f, 2.0f, 0.25f, 1e-3f, -7.0f};
  const std::vector<float> positions{1, 2, 3, 4};
  const std::vector<std::int32_t> indices{3, 1, 4, 1, 5};
  const std::vector<std::int64_t> steps{0, 1};
  const std::vector<double> loss{0.6931471805599453};
  const std::vector<float> nothing;
  save("valid_empty.safetensors", tinyattn::io::serialize_safetensors({}));
  save("valid_one_f32.safetensors", tinyattn::io::serialize_safetensors({tensor_to_write("w", {2, 3}, embedding)}));
  save("valid_model_like.safetensors",
       tinyattn::io::serialize_safetensors(
           {tensor_to_write("init._token_embedding._weight", {3, 2}, embedding),
            tensor_to_write("init._positional_embedding._positions", {2, 2}, positions),
            tensor_to_write("train_indices", {5}, indices), tensor_to_write("steps", {1, 2}, steps),
            tensor_to_write("loss", {}, loss), tensor_to_write("probe.empty", {0, 4}, nothing)},
           {{"seed", "0"}, {"heads", "2"}, {"d_model", "32"}}));
  save("valid_metadata_only.safetensors",
       tinyattn::io::serialize_safetensors({}, {{"format", "pt"}, {"note", "ünïcödé \"quoted\""}}));
  save("valid_other_dtypes.safetensors", raw_file(R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
                                                  R"("b":{"dtype":"BF16","shape":[1,1],"data_offsets":[4,6]},)"
                                                  R"("u":{"dtype":"U8","shape":[3],"data_offsets":[6,9]},)"
                                                  R"("t":{"dtype":"BOOL","shape":[1],"data_offsets":[9,10]}}      )",
                                                  10));

  // Broken files, one per kind of rejection.
  save("broken_truncated.safetensors", std::vector<unsigned char>{40, 0, 0, 0, 0, 0, 0, 0, '{'});
  save(
      "broken_overlap.safetensors",
      raw_file(
          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
          12));
  save(
      "broken_hole.safetensors",
      raw_file(
          R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}})",
          16));
  save(
      "broken_duplicate.safetensors",
      raw_file(
          R"({"a":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"a":{"dtype":"F64","shape":[],"data_offsets":[8,16]}})",
          16));
  save("broken_size_mismatch.safetensors",
       raw_file(R"({"a":{"dtype":"F32","shape":[3,2],"data_offsets":[0,20]}})", 20));
  save("broken_bad_metadata.safetensors", raw_file(R"({"__metadata__":{"seed":0}})", 0));
  save("broken_negative_shape.safetensors", raw_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4));
  return 0;
}
