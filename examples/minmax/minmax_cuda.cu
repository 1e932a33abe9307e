// minmax-cuda: the minmax program compiled by nvcc; trains on the GPU by default (--backend cuda|cpu).
#define TINYATTN_MINMAX_CUDA 1
#include "minmax.cpp"
