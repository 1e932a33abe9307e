// tinyattn/backend/threads.hpp — how many CPU threads tinyattn's loops use.
//
//   tinyattn::set_cpu_threads(1);         // this thread's later training, evaluation, inspection: one thread
//   int n = tinyattn::cpu_threads();      // how many they may use
//   {
//     tinyattn::ScopedCpuThreads one(1);  // for a scope; the previous count comes back at its end
//     trainer.run(100);
//   }
//
// The CPU backend (and Thrust's CPU systems) run their loops as OpenMP regions of up to cpu_threads()
// threads; the default is OpenMP's: OMP_NUM_THREADS, else one thread per core. The count belongs to the
// calling thread (OpenMP's nthreads-var), so threads of your own start from the default. Results are
// the same bits for every count (tests/core/test_training.cpp). A loop over little work runs on the
// calling thread whatever the count (backend/cpu.hpp: kSerialBelow, kParallelWork): waking a thread
// costs more than such work, which is how a small task stays as fast with two threads as with one.
// Built without OpenMP everything runs on the calling thread: cpu_threads() is 1 and set_cpu_threads()
// only checks its argument.
#pragma once

#include "tinyattn/core/config.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tinyattn {

// The number of threads the calling thread's next parallel loops may use.
inline int cpu_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// requires: threads >= 1 (throws tinyattn::Error otherwise).
inline void set_cpu_threads(int threads) {
  require(threads >= 1, "tinyattn::set_cpu_threads: the thread count must be at least 1, found ", threads);
#if defined(_OPENMP)
  omp_set_num_threads(threads);
#endif
}

// set_cpu_threads(threads) until the end of the scope, then the count from before.
class ScopedCpuThreads {
 public:
  explicit ScopedCpuThreads(int threads) : previous_(cpu_threads()) { set_cpu_threads(threads); }
  ~ScopedCpuThreads() { set_cpu_threads(previous_); }
  ScopedCpuThreads(const ScopedCpuThreads&) = delete;
  ScopedCpuThreads& operator=(const ScopedCpuThreads&) = delete;

 private:
  int previous_;
};

}  // namespace tinyattn
