// The same benchmark on the Thrust backend, compiled by nvcc: the reference experiment on the GPU.
#define TINYATTN_BENCH_CUDA 1
#include "bench_experiment.cpp"
