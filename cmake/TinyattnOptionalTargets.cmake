# Optional parts of tinyattn, as targets a user links when wanted. Included both by the project's
# own CMakeLists.txt and by the installed tinyattnConfig.cmake, so build tree and install agree.
#
#   tinyattn::plot        plotting header (gnuplot-iostream + Boost.Iostreams; its tmpfile support,
#                         always on with Boost >= 1.46, needs Boost.Filesystem too)
#   tinyattn::thrust_cpu  the Thrust backend compiled by the host compiler, Thrust's OpenMP device
#                         system (Debian's libthrust-dev 1.17, pinned: CCCL 3 is for nvcc only)
#   tinyattn::cuda        the Thrust backend compiled by nvcc on CUDA, with the toolkit's CCCL
#                         (only where the project enabled the CUDA language; link it to .cu targets)
#
# Each target exists only when its dependencies are found; TINYATTN_HAVE_<PART> says which.

# --- plotting ------------------------------------------------------------------------------------
if(NOT TARGET tinyattn::plot)
  find_package(Boost 1.74 QUIET COMPONENTS iostreams filesystem)
  find_path(TINYATTN_GNUPLOT_IOSTREAM_INCLUDE_DIR gnuplot-iostream.h)
  if(Boost_iostreams_FOUND AND Boost_filesystem_FOUND AND TINYATTN_GNUPLOT_IOSTREAM_INCLUDE_DIR)
    add_library(tinyattn::plot INTERFACE IMPORTED)
    target_include_directories(tinyattn::plot INTERFACE ${TINYATTN_GNUPLOT_IOSTREAM_INCLUDE_DIR})
    target_link_libraries(tinyattn::plot INTERFACE tinyattn::tinyattn Boost::iostreams Boost::filesystem)
    target_compile_definitions(tinyattn::plot INTERFACE TINYATTN_HAVE_PLOT=1)
    set(TINYATTN_HAVE_PLOT ON)
  else()
    set(TINYATTN_HAVE_PLOT OFF)
  endif()
endif()

# --- Thrust on the CPU ------------------------------------------------------------------------------
if(NOT TARGET tinyattn::thrust_cpu)
  # Pinned to the Debian package: the CUDA toolkit's CCCL 3 (lib/cmake/thrust under the toolkit)
  # requires nvcc-compatible headers and is only used by the CUDA flavour (TINYATTN_CUDA).
  find_package(Thrust 1.17 CONFIG QUIET PATHS /usr/share/cmake /usr/lib/cmake NO_DEFAULT_PATH)
  if(Thrust_FOUND)
    thrust_create_target(tinyattn_thrust_omp_device HOST CPP DEVICE OMP)
    add_library(tinyattn::thrust_cpu INTERFACE IMPORTED)
    target_link_libraries(tinyattn::thrust_cpu INTERFACE tinyattn::tinyattn tinyattn_thrust_omp_device)
    target_compile_definitions(tinyattn::thrust_cpu INTERFACE TINYATTN_HAVE_THRUST=1)
    set(TINYATTN_HAVE_THRUST_CPU ON)
  else()
    set(TINYATTN_HAVE_THRUST_CPU OFF)
  endif()
endif()

# --- CUDA ------------------------------------------------------------------------------------------
get_property(_tinyattn_languages GLOBAL PROPERTY ENABLED_LANGUAGES)
if("CUDA" IN_LIST _tinyattn_languages AND NOT TARGET tinyattn::cuda)
  find_package(CUDAToolkit REQUIRED)
  add_library(tinyattn::cuda INTERFACE IMPORTED)
  # Pin Thrust to the toolkit's CCCL: nvcc puts include/cccl first on its own, this keeps it so even
  # when another dependency adds /usr/include (Debian's Thrust 1.17) to the include path.
  find_path(TINYATTN_CCCL_INCLUDE_DIR thrust/version.h PATHS ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES cccl
            NO_DEFAULT_PATH REQUIRED)
  target_include_directories(tinyattn::cuda SYSTEM BEFORE INTERFACE "${TINYATTN_CCCL_INCLUDE_DIR}")
  target_link_libraries(tinyattn::cuda INTERFACE tinyattn::tinyattn CUDA::cudart)
  target_compile_definitions(tinyattn::cuda INTERFACE TINYATTN_HAVE_THRUST=1 TINYATTN_HAVE_CUDA=1)
  # 20012/20015: Eigen's defaulted host/device members and constexpr calls, harmless in host code.
  target_compile_options(tinyattn::cuda INTERFACE
    $<$<COMPILE_LANGUAGE:CUDA>:-diag-suppress=20012,20015 -Xcompiler=-fopenmp,-fno-trapping-math>)
  set(TINYATTN_HAVE_CUDA ON)
endif()
