// The CUDA flavour of the test suite: the core tests compiled by nvcc, over the CPU backend and the
// Thrust backend on CUDA. Without a device it says so and exits 77, which ctest reports as skipped;
// CI still compiles it, so device-code errors show up there.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include <cuda_runtime.h>

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::puts("tinyattn CUDA tests: no CUDA device here, nothing run (built only)");
    return 77;
  }
  cudaDeviceProp properties{};
  cudaGetDeviceProperties(&properties, 0);
  std::printf("tinyattn CUDA tests on %s\n", properties.name);
  doctest::Context context(argc, argv);
  return context.run();
}
