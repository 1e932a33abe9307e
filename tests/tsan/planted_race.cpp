// Proves the ThreadSanitizer build can fail: a planted race in an OpenMP loop must be reported (the
// ctest passes only when TSan prints "data race"). The reduction below it must not be.
#include <cstdio>

int main() {
  int shared = 0;
#pragma omp parallel for
  for (int i = 0; i < 1000; ++i) shared += i;  // the planted race
  int fine = 0;
#pragma omp parallel for reduction(+ : fine)
  for (int i = 0; i < 1000; ++i) fine += i;
  std::printf("%d %d\n", shared, fine);
  return 0;
}
