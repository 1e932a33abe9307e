// libFuzzer target for the safetensors reader (tinyattn/io/safetensors.hpp).
//
// Contract under test: SafetensorsFile::parse on arbitrary bytes either throws tinyattn::Error or
// returns a file whose every view is consistent and readable. Anything else — a crash, an
// ASan/UBSan report, another exception type escaping, a broken invariant (abort) — is a finding.
// A file that parses must also survive a round trip through serialize_safetensors unchanged.
//
// Build and run: tests/fuzz/run_fuzz.sh [seconds]
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tinyattn/io/safetensors.hpp"

namespace {

using tinyattn::io::DType;
using tinyattn::io::SafetensorsFile;
using tinyattn::io::TensorView;

#define FUZZ_ASSERT(condition)                                                                          \
  do {                                                                                                  \
    if (!(condition)) {                                                                                 \
      std::fprintf(stderr, "fuzz_safetensors: invariant failed: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                                     \
    }                                                                                                   \
  } while (0)

// A typed read with the right type and shape must succeed; with a wrong shape it must throw.
template <class T>
void exercise_typed_reads(const SafetensorsFile& file, const TensorView& view) {
  const std::vector<T> values = file.read<T>(view.name, view.shape);
  FUZZ_ASSERT(values.size() == view.numel());
  FUZZ_ASSERT(file.read<T>(view.name).size() == view.numel());
  std::vector<std::int64_t> other_shape = view.shape;
  other_shape.push_back(1);
  bool threw = false;
  try {
    (void)file.read<T>(view.name, other_shape);
  } catch (const tinyattn::io::FormatError&) {
    threw = true;
  }
  FUZZ_ASSERT(threw);
}

// A read with the wrong element type must throw FormatError.
template <class T>
void expect_dtype_mismatch(const SafetensorsFile& file, const TensorView& view) {
  if (view.dtype == tinyattn::io::dtype_of<T>()) return;
  bool threw = false;
  try {
    (void)file.read<T>(view.name, view.shape);
  } catch (const tinyattn::io::FormatError&) {
    threw = true;
  }
  FUZZ_ASSERT(threw);
}

void exercise(const SafetensorsFile& file, std::size_t input_size) {
  const std::vector<std::string> names = file.names();
  FUZZ_ASSERT(names.size() == file.tensors().size());
  std::uint64_t total_bytes = 0;
  for (const TensorView& view : file.tensors()) {
    FUZZ_ASSERT(file.contains(view.name));
    FUZZ_ASSERT(&file.tensor(view.name) == &view);
    FUZZ_ASSERT(view.bytes == view.numel() * tinyattn::io::dtype_size(view.dtype));
    // Touch every byte so ASan sees any view that escapes the buffer.
    unsigned checksum = 0;
    for (std::size_t i = 0; i < view.bytes; ++i) checksum += view.data[i];
    (void)checksum;
    total_bytes += view.bytes;
    switch (view.dtype) {
      case DType::F32:
        exercise_typed_reads<float>(file, view);
        break;
      case DType::F64:
        exercise_typed_reads<double>(file, view);
        break;
      case DType::I32:
        exercise_typed_reads<std::int32_t>(file, view);
        break;
      case DType::I64:
        exercise_typed_reads<std::int64_t>(file, view);
        break;
      default:
        break;
    }
    expect_dtype_mismatch<float>(file, view);
    expect_dtype_mismatch<std::int64_t>(file, view);
  }
  bool threw = false;
  try {
    (void)file.tensor("\x01 no tensor is called this");
  } catch (const tinyattn::io::FormatError&) {
    threw = true;
  }
  FUZZ_ASSERT(threw || file.contains("\x01 no tensor is called this"));
  std::size_t metadata_text = 0;
  for (const auto& [key, value] : file.metadata()) metadata_text += key.size() + value.size();
  FUZZ_ASSERT(metadata_text <= input_size);  // JSON escapes only ever shrink when decoded

  // Round trip: writing the parsed file back must give a file that parses to the same content.
  std::vector<tinyattn::io::TensorToWrite> tensors;
  for (const TensorView& view : file.tensors()) {
    tensors.push_back({view.name, view.dtype, view.shape, view.data, view.bytes});
  }
  std::vector<unsigned char> rewritten;
  try {
    rewritten = tinyattn::io::serialize_safetensors(tensors, file.metadata());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fuzz_safetensors: a parsed file cannot be written back: %s\n", error.what());
    std::abort();
  }
  FUZZ_ASSERT(rewritten.size() >= 8 + total_bytes);
  try {
    const SafetensorsFile again = SafetensorsFile::parse(std::move(rewritten), "rewritten");
    FUZZ_ASSERT(again.metadata() == file.metadata());
    FUZZ_ASSERT(again.tensors().size() == file.tensors().size());
    for (std::size_t i = 0; i < file.tensors().size(); ++i) {
      const TensorView& before = file.tensors()[i];
      const TensorView& after = again.tensors()[i];
      FUZZ_ASSERT(before.name == after.name && before.dtype == after.dtype && before.shape == after.shape &&
                  before.bytes == after.bytes);
      for (std::size_t b = 0; b < before.bytes; ++b) FUZZ_ASSERT(before.data[b] == after.data[b]);
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fuzz_safetensors: a rewritten file does not parse: %s\n", error.what());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const SafetensorsFile file = SafetensorsFile::parse(std::vector<unsigned char>(data, data + size), "fuzz-input");
    exercise(file, size);
  } catch (const tinyattn::Error&) {
    // Rejecting malformed input with tinyattn::Error is the expected outcome.
  }
  return 0;
}
