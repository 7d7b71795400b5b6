#!/bin/sh
# Configures the source tree with -DCLUSTERBENCH_CUDA=OFF into a scratch directory: the configure
# must succeed, report the CUDA backend OFF and generate no cb_cuda_backend target, whether or
# not nvcc is installed. Usage: cuda_off_configure.sh CMAKE SOURCE_DIR SCRATCH_DIR
set -eu
cmake_bin=$1 src=$2 dir=$3
rm -rf "$dir"
log=$("$cmake_bin" -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCLUSTERBENCH_BUILD_TESTS=ON -DCLUSTERBENCH_CUDA=OFF 2>&1) || {
  echo "$log"; echo "FAIL: configure with -DCLUSTERBENCH_CUDA=OFF failed"; exit 1; }
echo "$log" | grep -q "clusterbench: CUDA backend OFF" || {
  echo "$log"; echo "FAIL: configure did not report the CUDA backend OFF"; exit 1; }
if "$cmake_bin" --build "$dir" --target help | grep -q "cb_cuda_backend"; then
  echo "FAIL: cb_cuda_backend is a target although CLUSTERBENCH_CUDA=OFF"; exit 1
fi
if grep -q "CMAKE_CUDA_COMPILER:" "$dir/CMakeCache.txt"; then
  echo "FAIL: CLUSTERBENCH_CUDA=OFF still looked for a CUDA compiler"; exit 1
fi
echo "ok: CLUSTERBENCH_CUDA=OFF configures without CUDA"
rm -rf "$dir"
