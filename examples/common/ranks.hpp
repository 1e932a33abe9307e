// examples/common/ranks.hpp — the processes of a program started by mpirun, through MPI where the
// program was built with it (TINYATTN_WITH_MPI), one process otherwise.
//
//   programs::Ranks ranks;               // MPI_Init only when mpirun started us
//   if (ranks.rank() == 0) ...           // rank 0 gathers and writes
//   auto texts = ranks.gather(mine);     // rank 0: every rank's text, in rank order; others: {}
//
// A program built without MPI but started by mpirun with more than one process refuses to run (each
// copy would do all the work and write the same files) and says how to get MPI.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(TINYATTN_WITH_MPI)
#include <mpi.h>
#endif

namespace programs {

// The number of processes mpirun (Open MPI, or a PMI launcher) started, or 0 when it did not start us.
inline int mpirun_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return 0;
}

// This process's rank among them, or 0 when mpirun did not start us (read before MPI starts).
inline int mpirun_world_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return 0;
}

// The number of those processes on this machine (1 when unknown).
inline int mpirun_local_size() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMIX_LOCAL_SIZE"})
    if (const char* value = std::getenv(name)) return std::max(1, std::atoi(value));
  return 1;
}

inline constexpr bool built_with_mpi() {
#if defined(TINYATTN_WITH_MPI)
  return true;
#else
  return false;
#endif
}

class Ranks {
 public:
  Ranks() {
    const int launched = mpirun_world_size();
#if defined(TINYATTN_WITH_MPI)
    if (launched > 0) {
      MPI_Init(nullptr, nullptr);
      initialized_ = true;
      MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
      MPI_Comm_size(MPI_COMM_WORLD, &size_);
    }
#else
    if (launched > 1)
      throw std::runtime_error(
          "started by mpirun with " + std::to_string(launched) +
          " processes, but this program was built without MPI: install libopenmpi-dev and openmpi-bin "
          "(tools/install_deps.sh), reconfigure and rebuild, or run it without mpirun");
#endif
  }
  ~Ranks() {
#if defined(TINYATTN_WITH_MPI)
    if (initialized_) MPI_Finalize();
#endif
  }
  Ranks(const Ranks&) = delete;
  Ranks& operator=(const Ranks&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }

  void barrier() const {
#if defined(TINYATTN_WITH_MPI)
    if (initialized_) MPI_Barrier(MPI_COMM_WORLD);
#endif
  }

  // Rank 0 receives every rank's text, in rank order (its own first); the others receive nothing.
  std::vector<std::string> gather(const std::string& mine) const {
#if defined(TINYATTN_WITH_MPI)
    if (initialized_ && size_ > 1) {
      const int length = static_cast<int>(mine.size());
      std::vector<int> lengths(static_cast<std::size_t>(size_)), offsets(static_cast<std::size_t>(size_));
      MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
      std::string all;
      if (root()) {
        int total = 0;
        for (int r = 0; r < size_; ++r)
          offsets[static_cast<std::size_t>(r)] = total, total += lengths[static_cast<std::size_t>(r)];
        all.resize(static_cast<std::size_t>(total));
      }
      MPI_Gatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, 0,
                  MPI_COMM_WORLD);
      std::vector<std::string> texts;
      if (root())
        for (int r = 0; r < size_; ++r)
          texts.push_back(all.substr(static_cast<std::size_t>(offsets[static_cast<std::size_t>(r)]),
                                     static_cast<std::size_t>(lengths[static_cast<std::size_t>(r)])));
      return texts;
    }
#endif
    return {mine};
  }

  // Ends every rank after an error in this one: without it the others would wait in gather() forever.
  [[noreturn]] void abort_all(int status) const {
    std::fflush(stdout);
    std::fflush(stderr);
#if defined(TINYATTN_WITH_MPI)
    if (initialized_ && size_ > 1) MPI_Abort(MPI_COMM_WORLD, status);
#endif
    std::exit(status);
  }

 private:
  int rank_ = 0, size_ = 1;
  bool initialized_ = false;
};

}  // namespace programs
