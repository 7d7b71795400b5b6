// The activation quantisers and the dequantising epilogue of the int8 / fp8 GEMMs
// (quant_kernels.h). Written for correctness first: scalar loads and byte stores, one block
// per token (int8) or per 128-column group of a token (fp8); the codes come from
// quant_codes.h, the same functions the host tests check against workloads/quant.cc.

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/quant_codes.h"
#include "backends/cuda/quant_kernels.h"

namespace cb::cuda {
namespace {

using dev::BlockMax;
using dev::Blocks;
using dev::Dispatch;
using dev::kBlock;
using dev::ToF;

constexpr int kGroup = 128;  ///< fp8 activation group (workloads/quant.h kFp8Block)

/// One block of kBlock threads per padded row; rows past `rows` read as zeros.
template <typename T>
__global__ void QuantizeInt8Kernel(QuantizeArgs a) {
  const int64_t r = blockIdx.x;
  const bool real = r < a.rows;
  const T* x = static_cast<const T*>(a.x) + (real ? r * a.x_ld : 0);
  float m = 0.0f;
  if (real) {
    for (int64_t c = threadIdx.x; c < a.k; c += blockDim.x) m = fmaxf(m, fabsf(ToF(x[c])));
  }
  const float s = QuantScaleOf(BlockMax(m, blockDim.x), kQuantInt8Max);
  uint8_t* q = a.q + r * a.k_pad;
  for (int64_t c = threadIdx.x; c < a.k_pad; c += blockDim.x) {
    q[c] = real && c < a.k ? static_cast<uint8_t>(Int8Code(ToF(x[c]), s)) : 0;
  }
  if (threadIdx.x == 0) a.scales[r] = s;
}

/// One block of kGroup threads per (padded row, group); one element per thread.
template <typename T>
__global__ void QuantizeFp8Kernel(QuantizeArgs a, int64_t groups) {
  const int64_t r = blockIdx.x / groups, g = blockIdx.x % groups;
  const int64_t c = g * kGroup + threadIdx.x;
  const bool real = r < a.rows && c < a.k;
  const float v = real ? ToF(static_cast<const T*>(a.x)[r * a.x_ld + c]) : 0.0f;
  const float s = QuantScaleOf(BlockMax(fabsf(v), kGroup), kQuantFp8Max);
  if (c < a.k_pad) a.q[r * a.k_pad + c] = real ? Fp8CodeOf(v, s) : 0;
  if (threadIdx.x == 0) a.scales[g * a.rows_pad + r] = s;
}

__global__ void QuantEpilogueKernel(EpilogueArgs a) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.rows * a.n) return;
  const int64_t r = i / a.n, c = i % a.n;
  const int64_t at = r * a.acc_ld + c;
  float v = a.acc_int32 ? static_cast<float>(static_cast<const int32_t*>(a.acc)[at])
                        : static_cast<const float*>(a.acc)[at];
  if (a.sx != nullptr) v *= a.sx[a.sx_offset + r];
  if (a.sw != nullptr) v *= a.sw[(c / a.sw_block) * a.sw_stride + a.sw_offset];
  float* y = a.y + r * a.y_ld + c;
  *y = a.accumulate ? *y + v : v;
}

bool ShapeOk(const QuantizeArgs& a) {
  return a.x != nullptr && a.q != nullptr && a.scales != nullptr && a.rows >= 0 &&
         a.rows_pad >= a.rows && a.k > 0 && a.k_pad >= a.k && a.x_ld >= a.k;
}

}  // namespace

cudaError_t LaunchQuantizeInt8(const QuantizeArgs& args, cudaStream_t stream) {
  if (!ShapeOk(args)) return cudaErrorInvalidValue;
  if (args.rows_pad == 0) return cudaSuccess;
  return Dispatch(args.x_type, [&](auto z) {
    using T = decltype(z);
    QuantizeInt8Kernel<T><<<static_cast<unsigned>(args.rows_pad), kBlock, 0, stream>>>(args);
    return cudaGetLastError();
  });
}

cudaError_t LaunchQuantizeFp8(const QuantizeArgs& args, cudaStream_t stream) {
  const int64_t groups = (args.k + kGroup - 1) / kGroup;
  if (!ShapeOk(args) || args.k_pad > groups * kGroup) return cudaErrorInvalidValue;
  if (args.rows_pad == 0) return cudaSuccess;
  return Dispatch(args.x_type, [&](auto z) {
    using T = decltype(z);
    QuantizeFp8Kernel<T>
        <<<static_cast<unsigned>(args.rows_pad * groups), kGroup, 0, stream>>>(args, groups);
    return cudaGetLastError();
  });
}

cudaError_t LaunchQuantEpilogue(const EpilogueArgs& args, cudaStream_t stream) {
  if (args.acc == nullptr || args.y == nullptr || args.rows < 0 || args.n < 0 ||
      args.acc_ld < args.n || args.y_ld < args.n || args.sw_block < 1) {
    return cudaErrorInvalidValue;
  }
  if (args.rows * args.n == 0) return cudaSuccess;
  QuantEpilogueKernel<<<Blocks(args.rows * args.n), kBlock, 0, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace cb::cuda
