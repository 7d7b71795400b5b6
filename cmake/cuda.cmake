# The CUDA backend switch. CLUSTERBENCH_CUDA:
#   AUTO (default): build backends/cuda when check_language(CUDA) finds nvcc;
#   ON: require nvcc (configure fails without it); OFF: do not look for CUDA at all.
# Sets CLUSTERBENCH_HAVE_CUDA (ON/OFF) and, with CUDA, CLUSTERBENCH_HAVE_NCCL and the
# imported target cb::nccl when NCCL's header and library are found. CLUSTERBENCH_NCCL=OFF
# builds without NCCL even where it is installed (tests/tools/cuda_no_nccl_compile.sh).
set(CLUSTERBENCH_CUDA AUTO CACHE STRING "Build the CUDA backend: AUTO (when nvcc is found), ON, OFF")
set_property(CACHE CLUSTERBENCH_CUDA PROPERTY STRINGS AUTO ON OFF)
option(CLUSTERBENCH_NCCL "Use NCCL for the CUDA backend's collectives where it is found" ON)
string(TOUPPER "${CLUSTERBENCH_CUDA}" _cb_cuda)
if(_cb_cuda MATCHES "^(ON|TRUE|YES|1|Y)$")
  set(_cb_cuda ON)
elseif(_cb_cuda MATCHES "^(OFF|FALSE|NO|0|N)$")
  set(_cb_cuda OFF)
elseif(NOT _cb_cuda STREQUAL "AUTO")
  message(FATAL_ERROR "CLUSTERBENCH_CUDA must be AUTO, ON or OFF, got '${CLUSTERBENCH_CUDA}'")
endif()

set(CLUSTERBENCH_HAVE_CUDA OFF)
set(CLUSTERBENCH_HAVE_NCCL OFF)
if(NOT _cb_cuda STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # sm_90 (H100/H200) as real code, plus PTX for compute_80 that any later GPU JIT-compiles.
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
      set(CMAKE_CUDA_ARCHITECTURES "90-real;80-virtual")
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)  # CMake 3.25 knows no CUDA20 flags for nvcc; kernels.cu is C++17
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    set(CLUSTERBENCH_HAVE_CUDA ON)
    if(CLUSTERBENCH_NCCL)
      find_path(CLUSTERBENCH_NCCL_INCLUDE_DIR nccl.h
        HINTS ${CUDAToolkit_INCLUDE_DIRS} ENV NCCL_HOME PATH_SUFFIXES include)
      find_library(CLUSTERBENCH_NCCL_LIBRARY nccl
        HINTS ${CUDAToolkit_LIBRARY_DIR} ENV NCCL_HOME PATH_SUFFIXES lib lib64)
    endif()
    if(CLUSTERBENCH_NCCL AND CLUSTERBENCH_NCCL_INCLUDE_DIR AND CLUSTERBENCH_NCCL_LIBRARY)
      set(CLUSTERBENCH_HAVE_NCCL ON)
      add_library(cb::nccl UNKNOWN IMPORTED)
      set_target_properties(cb::nccl PROPERTIES IMPORTED_LOCATION ${CLUSTERBENCH_NCCL_LIBRARY}
        INTERFACE_INCLUDE_DIRECTORIES ${CLUSTERBENCH_NCCL_INCLUDE_DIR})
    endif()
  elseif(_cb_cuda STREQUAL "ON")
    message(FATAL_ERROR "CLUSTERBENCH_CUDA=ON but no CUDA compiler was found (check_language(CUDA));"
      " put nvcc on PATH or set CMAKE_CUDA_COMPILER, or use CLUSTERBENCH_CUDA=AUTO or OFF")
  endif()
endif()
if(CLUSTERBENCH_HAVE_CUDA)
  message(STATUS "clusterbench: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
    "architectures ${CMAKE_CUDA_ARCHITECTURES}, NCCL ${CLUSTERBENCH_HAVE_NCCL})")
else()
  message(STATUS "clusterbench: CUDA backend OFF (CLUSTERBENCH_CUDA=${CLUSTERBENCH_CUDA})")
endif()
