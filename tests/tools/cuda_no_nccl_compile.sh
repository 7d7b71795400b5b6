#!/bin/sh
# Configures the CUDA backend with NCCL hidden and compiles its host objects: the build a GPU
# machine without NCCL headers does (ci/gpu). NCCL is turned off (-DCLUSTERBENCH_NCCL=OFF) and
# hidden: a poisoned nccl.h comes first on the include path, so any source that includes it
# without CLUSTERBENCH_HAVE_NCCL fails. Only the host (.cc) objects of cb_cuda_backend,
# cuda_bench and the plugin are compiled: the .cu files see no NCCL either way, and nvcc is
# the slow part of the build. Usage: cuda_no_nccl_compile.sh CMAKE SOURCE_DIR SCRATCH_DIR
set -eu
cmake_bin=$1 src=$2 dir=$3
rm -rf "$dir"
mkdir -p "$dir/poison"
printf '#error "nccl.h included although NCCL is off (CLUSTERBENCH_HAVE_NCCL unset)"\n' \
  > "$dir/poison/nccl.h"
log=$("$cmake_bin" -S "$src" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCLUSTERBENCH_GPU_ONLY=ON -DCLUSTERBENCH_CUDA=ON -DCLUSTERBENCH_NCCL=OFF \
  -DCLUSTERBENCH_BUILD_TESTS=OFF "-DCMAKE_CXX_FLAGS=-I$dir/poison" \
  "-DCMAKE_CUDA_FLAGS=-I$dir/poison" 2>&1) || {
  echo "$log"; echo "FAIL: configure with -DCLUSTERBENCH_NCCL=OFF failed"; exit 1; }
echo "$log" | grep -q "clusterbench: CUDA backend ON .*NCCL OFF" || {
  echo "$log"; echo "FAIL: configure did not report the CUDA backend ON with NCCL OFF"; exit 1; }
objects=$("$cmake_bin" --build "$dir/build" -- -t targets all |
  sed -n 's#^\(.*CMakeFiles/\(cb_cuda_backend\|cuda_bench\|clusterbench_cuda\)\.dir/.*\.cc\.o\):.*#\1#p')
if [ -z "$objects" ]; then
  echo "FAIL: no host objects of cb_cuda_backend, cuda_bench or clusterbench_cuda"; exit 1
fi
# shellcheck disable=SC2086
if ! "$cmake_bin" --build "$dir/build" -- -j2 $objects; then
  echo "FAIL: the CUDA backend does not compile without NCCL"; exit 1
fi
echo "ok: the CUDA backend's host objects compile with NCCL hidden:" $objects
rm -rf "$dir"
