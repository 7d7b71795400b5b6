# CLUSTERBENCH_GPU_ONLY=ON: a GPU machine with CUDA, CMake and a C++ compiler but no Debian
# packages (ci/gpu). Builds only harness/core, workloads, the reference backend, the device
# catalog, the energy meters, the CUDA backend, its gpu tests and cuda_bench. The header-only
# dependencies come from extracted Debian packages (ci/gpu-fetch-debs) on CMAKE_PREFIX_PATH:
# nlohmann-json3-dev (nlohmann_json), and googletest's sources (GTEST_SOURCE_DIR) built here.
if(NOT CLUSTERBENCH_HAVE_CUDA)
  message(FATAL_ERROR "CLUSTERBENCH_GPU_ONLY needs the CUDA backend; nvcc was not found")
endif()
find_package(nlohmann_json 3.10 REQUIRED)
find_package(OpenMP REQUIRED)
find_package(Threads REQUIRED)
set(CLUSTERBENCH_SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR})

add_library(cb_warnings INTERFACE)
target_compile_options(cb_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -Wno-restrict>)

add_subdirectory(harness/core)
add_subdirectory(workloads)
add_subdirectory(backends/reference)
add_subdirectory(backends/devices)
add_subdirectory(backends/energy)
add_subdirectory(backends/cuda)

if(CLUSTERBENCH_BUILD_TESTS)
  set(GTEST_SOURCE_DIR "" CACHE PATH "googletest sources (e.g. the googletest package's /usr/src/googletest)")
  if(GTEST_SOURCE_DIR)
    set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
    set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
    add_subdirectory(${GTEST_SOURCE_DIR} ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL)
  else()
    find_package(GTest REQUIRED)
  endif()
  enable_testing()
  include(GoogleTest)
  add_subdirectory(tests/gpu)
endif()
