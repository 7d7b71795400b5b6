// The skinny GEMM of decode steps: out[rows, n] = in[rows, k] x W^T for rows <= 8, where the
// weights' bytes set the time. Each warp computes kSkinnyColsPerWarp consecutive output
// columns for all rows: lanes stride over k with 16-byte loads of the weight rows (the next
// step's loads issued before this step's arithmetic), fp32 accumulation, a warp sum at the
// end. A prologue computes the input rows into shared memory first (RMSNorm, or SwiGLU of
// gate | up), with the same arithmetic as the standalone kernels; the epilogue stores (fp32 or
// the session dtype) or adds into fp32 (the fused residual add).

#include <cmath>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/kernels.h"

namespace cb::cuda {
namespace {

using dev::BlockSum;
using dev::FromF;
using dev::LoadAct;
using dev::ToF;
using dev::WarpSum;

constexpr int kCols = kSkinnyColsPerWarp;

/// The prologue: the block's R input rows into xs [R][ld], in T.
template <typename T, int R>
__device__ void Stage(const SkinnyArgs& a, T* xs, int64_t ld) {
  const int64_t k = a.k;
  if (a.prologue == Prologue::kRmsNorm) {
    for (int r = 0; r < R; ++r) {
      const float* x = static_cast<const float*>(a.in) + r * a.in_ld;
      float ss = 0;
      for (int64_t i = threadIdx.x; i < k; i += blockDim.x) ss += x[i] * x[i];
      ss = BlockSum(ss);  // as RmsNormKernel: the same sum, so the same rounded inputs
      const float inv = 1.0f / sqrtf(ss / static_cast<float>(k) + a.eps);
      for (int64_t i = threadIdx.x; i < k; i += blockDim.x) {
        xs[r * ld + i] = FromF<T>(x[i] * inv * a.gain[i]);
      }
    }
  } else {
    for (int64_t e = threadIdx.x; e < R * k; e += blockDim.x) {
      const int64_t r = e / k, i = e % k;
      const float g = LoadAct(a.in, r * a.in_ld + i, a.in_type);
      const float u = LoadAct(a.in, r * a.in_ld + k + i, a.in_type);
      xs[r * ld + i] = FromF<T>(g / (1.0f + expf(-g)) * u);
    }
  }
  __syncthreads();
}

/// acc[r][c] = partial dot of input row r with weight row c of this lane's 16-byte slices.
template <typename T, int R>
__device__ __forceinline__ void DotVector(const T* const (&w)[kCols], const T* x, int64_t ld,
                                          int64_t k, int lane, float (&acc)[R][kCols]) {
  constexpr int V = dev::VecOf<T>();
  const int64_t step = 32 * V;
  int64_t i = static_cast<int64_t>(lane) * V;
  uint4 cur[kCols];
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    cur[c] = i < k ? __ldcs(reinterpret_cast<const uint4*>(w[c] + i)) : make_uint4(0, 0, 0, 0);
  }
  for (; i < k; i += step) {
    uint4 nxt[kCols];
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      nxt[c] = i + step < k ? __ldcs(reinterpret_cast<const uint4*>(w[c] + i + step))
                            : make_uint4(0, 0, 0, 0);
    }
    float wf[kCols][V];
#pragma unroll
    for (int c = 0; c < kCols; ++c) dev::Unpack<T>(cur[c], wf[c]);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float xf[V];
      dev::Unpack<T>(*reinterpret_cast<const uint4*>(x + r * ld + i), xf);
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
#pragma unroll
        for (int e = 0; e < V; ++e) acc[r][c] += xf[e] * wf[c][e];
      }
    }
#pragma unroll
    for (int c = 0; c < kCols; ++c) cur[c] = nxt[c];
  }
}

/// The same, one element a lane, for rows that are not 16-byte aligned.
template <typename T, int R>
__device__ __forceinline__ void DotScalar(const T* const (&w)[kCols], const T* x, int64_t ld,
                                          int64_t k, int lane, float (&acc)[R][kCols]) {
  for (int64_t i = lane; i < k; i += 32) {
    float wf[kCols];
#pragma unroll
    for (int c = 0; c < kCols; ++c) wf[c] = ToF(w[c][i]);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float xv = ToF(x[r * ld + i]);
#pragma unroll
      for (int c = 0; c < kCols; ++c) acc[r][c] += xv * wf[c];
    }
  }
}

template <typename T, int R>
__global__ void __launch_bounds__(kSkinnyThreads)
    SkinnyKernel(SkinnyArgs a, bool vector, int64_t stage_ld) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const T* x = static_cast<const T*>(a.in);
  int64_t ld = a.in_ld;
  if (a.prologue != Prologue::kNone) {
    T* xs = reinterpret_cast<T*>(smem_raw);
    Stage<T, R>(a, xs, stage_ld);
    x = xs;
    ld = stage_ld;
  }
  const T* weights = static_cast<const T*>(a.w);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  constexpr int kWarps = kSkinnyThreads / 32;
  const int64_t groups = (a.n + kCols - 1) / kCols;
  for (int64_t grp = static_cast<int64_t>(blockIdx.x) * kWarps + warp; grp < groups;
       grp += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int64_t c0 = grp * kCols;
    const T* w[kCols];
#pragma unroll
    for (int c = 0; c < kCols; ++c) w[c] = weights + min(c0 + c, a.n - 1) * a.k;  // in bounds
    float acc[R][kCols] = {};
    if (vector) {
      DotVector<T, R>(w, x, ld, a.k, lane, acc);
    } else {
      DotScalar<T, R>(w, x, ld, a.k, lane, acc);
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
        const float v = WarpSum(acc[r][c]);
        const int64_t col = c0 + c;
        if (lane != ((r * kCols + c) & 31) || col >= a.n) continue;
        const int64_t idx = r * a.out_ld + col;
        if (a.accumulate) {
          static_cast<float*>(a.out)[idx] += v;
        } else {
          dev::StoreAct(a.out, idx, a.out_type, v);
        }
      }
    }
  }
}

template <typename T, int R>
cudaError_t Launch(const SkinnyArgs& a, const SkinnyPlan& p, cudaStream_t stream) {
  // More than 48 KiB of dynamic shared memory needs the kernel's limit raised first.
  static uint64_t allowed = 48u << 10;
  if (p.smem > allowed) {
    const cudaError_t e = cudaFuncSetAttribute(
        SkinnyKernel<T, R>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(p.smem));
    if (e != cudaSuccess) return e;
    allowed = p.smem;
  }
  SkinnyKernel<T, R><<<p.blocks, kSkinnyThreads, p.smem, stream>>>(a, p.vector, p.stage_ld);
  return cudaGetLastError();
}

template <typename T>
cudaError_t LaunchRows(const SkinnyArgs& a, const SkinnyPlan& p, cudaStream_t stream) {
  switch (a.rows) {
    case 1:
      return Launch<T, 1>(a, p, stream);
    case 2:
      return Launch<T, 2>(a, p, stream);
    case 3:
      return Launch<T, 3>(a, p, stream);
    case 4:
      return Launch<T, 4>(a, p, stream);
    case 5:
      return Launch<T, 5>(a, p, stream);
    case 6:
      return Launch<T, 6>(a, p, stream);
    case 7:
      return Launch<T, 7>(a, p, stream);
    case 8:
      return Launch<T, 8>(a, p, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t LaunchSkinnyGemm(const SkinnyArgs& a, const SkinnyPlan& p, cudaStream_t stream) {
  if (!p.ok || p.blocks == 0 || (a.accumulate && a.out_type != DType::kF32)) {
    return cudaErrorInvalidValue;
  }
  return dev::Dispatch(a.type, [&](auto z) { return LaunchRows<decltype(z)>(a, p, stream); });
}

}  // namespace cb::cuda
