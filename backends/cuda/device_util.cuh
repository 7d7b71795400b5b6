#pragma once

// Device-side helpers shared by the backend's .cu files: storage-type conversions, dtype
// dispatch, warp and block reductions, 16-byte vector unpacking.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "harness/core/dtype.h"

namespace cb::cuda::dev {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kBlock = 256;

template <typename T>
__device__ __forceinline__ float ToF(T v);
template <>
__device__ __forceinline__ float ToF<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ float ToF<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <>
__device__ __forceinline__ float ToF<__half>(__half v) {
  return __half2float(v);
}

template <typename T>
__device__ __forceinline__ T FromF(float v);
template <>
__device__ __forceinline__ float FromF<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromF<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half FromF<__half>(float v) {
  return __float2half_rn(v);
}

/// Element i of an activation buffer held as `t` (fp32, bf16 or fp16), as fp32.
__device__ __forceinline__ float LoadAct(const void* p, int64_t i, DType t) {
  if (t == DType::kBF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  if (t == DType::kF16) return __half2float(static_cast<const __half*>(p)[i]);
  return static_cast<const float*>(p)[i];
}
__device__ __forceinline__ void StoreAct(void* p, int64_t i, DType t, float v) {
  if (t == DType::kBF16) {
    static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  } else if (t == DType::kF16) {
    static_cast<__half*>(p)[i] = __float2half_rn(v);
  } else {
    static_cast<float*>(p)[i] = v;
  }
}

/// Calls f(T{}) with T the storage type of `t`.
template <typename F>
cudaError_t Dispatch(DType t, F&& f) {
  switch (t) {
    case DType::kF32:
      return f(float{});
    case DType::kBF16:
      return f(__nv_bfloat16{});
    case DType::kF16:
      return f(__half{});
    default:
      return cudaErrorInvalidValue;
  }
}

inline unsigned Blocks(int64_t n, int block = kBlock) {
  return static_cast<unsigned>((n + block - 1) / block);
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

struct WarpSumOp {
  __device__ float operator()(float v) const { return WarpSum(v); }
};
struct WarpMaxOp {
  __device__ float operator()(float v) const { return WarpMax(v); }
};

/// `Warp` reduction over a block of `threads` threads (a multiple of 32, at most 1024): each
/// warp's, then warp 0 over those (absent warps count as 0); every thread gets the result.
template <typename Warp>
__device__ __forceinline__ float BlockReduce(float v, int threads) {
  __shared__ float partial[32];
  __shared__ float total;
  v = Warp()(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < threads / 32 ? partial[lane] : 0.0f;
    s = Warp()(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

/// Sum over a block of kBlock threads; every thread gets the result.
__device__ __forceinline__ float BlockSum(float v) { return BlockReduce<WarpSumOp>(v, kBlock); }

/// Max over a block of `threads` threads of non-negative values (absolute values: 0 is the
/// identity); every thread gets the result.
__device__ __forceinline__ float BlockMax(float v, int threads) {
  return BlockReduce<WarpMaxOp>(v, threads);
}

/// Elements of T in one 16-byte vector.
template <typename T>
constexpr int VecOf() {
  return static_cast<int>(16 / sizeof(T));
}

/// The VecOf<T>() values of a 16-byte vector as fp32.
template <typename T>
__device__ __forceinline__ void Unpack(const uint4& v, float* out);
template <>
__device__ __forceinline__ void Unpack<float>(const uint4& v, float* out) {
  out[0] = __uint_as_float(v.x);
  out[1] = __uint_as_float(v.y);
  out[2] = __uint_as_float(v.z);
  out[3] = __uint_as_float(v.w);
}
template <>
__device__ __forceinline__ void Unpack<__nv_bfloat16>(const uint4& v, float* out) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}
template <>
__device__ __forceinline__ void Unpack<__half>(const uint4& v, float* out) {
  const __half2* h = reinterpret_cast<const __half2*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

}  // namespace cb::cuda::dev
