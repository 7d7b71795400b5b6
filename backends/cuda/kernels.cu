// The CUDA backend's element-wise and row kernels: simple, one thread (or one warp, or one
// block) per obvious unit of work, fp32 arithmetic throughout, storage in fp32, bf16 or fp16.
// Attention is in attention_kernels.cu and flash_attention.cu, the skinny GEMM in
// skinny_gemm.cu; other matmuls go to cuBLAS (session_dispatch.cc).

#include <algorithm>
#include <cmath>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/kernels.h"

namespace cb::cuda {
namespace {

using dev::Blocks;
using dev::BlockSum;
using dev::Dispatch;
using dev::FromF;
using dev::kBlock;
using dev::LoadAct;
using dev::StoreAct;
using dev::ToF;
using dev::WarpSum;

template <typename T>
__global__ void ConvertKernel(const float* src, T* dst, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = FromF<T>(src[i]);
}

template <typename T>
__global__ void ToF32Kernel(const T* src, float* dst, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = ToF(src[i]);
}

template <typename T>
__global__ void FillUniformKernel(T* dst, int64_t n, uint64_t seed, float scale) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  uint64_t z = seed + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ull;  // splitmix64
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
  dst[i] = FromF<T>((2.0f * u - 1.0f) * scale);
}

template <typename T>
__global__ void EmbeddingKernel(const int32_t* tokens, int64_t rows, const T* table, int64_t width,
                                float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * width) return;
  const int64_t t = i / width, c = i % width;
  out[i] = ToF(table[static_cast<int64_t>(tokens[t]) * width + c]);
}

/// One block per row.
template <typename T>
__global__ void RmsNormKernel(float* in, const float* residual, T* out, const float* gain,
                              int64_t n, float eps) {
  const int64_t row = blockIdx.x;
  float* x = in + row * n;
  const float* r = residual != nullptr ? residual + row * n : nullptr;
  float ss = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float v = x[i];
    if (r != nullptr) {
      v += r[i];
      x[i] = v;
    }
    ss += v * v;
  }
  ss = BlockSum(ss);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    out[row * n + i] = FromF<T>(x[i] * inv * gain[i]);
  }
}

/// One warp per (row, head) of the Q and K heads.
__global__ void QkNormKernel(void* qkv, DType qt, int64_t rows, int64_t width, int heads,
                             int kv_heads, int hd, const float* q_gain, const float* k_gain,
                             float eps) {
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const int nh = heads + kv_heads;
  if (w >= rows * nh) return;  // whole warps
  const int64_t row = w / nh;
  const int h = static_cast<int>(w % nh);
  const int64_t base = row * width + static_cast<int64_t>(h) * hd;
  float ss = 0;
  for (int i = lane; i < hd; i += 32) {
    const float v = LoadAct(qkv, base + i, qt);
    ss += v * v;
  }
  ss = WarpSum(ss);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(hd) + eps);
  const float* g = h < heads ? q_gain : k_gain;
  for (int i = lane; i < hd; i += 32) {
    StoreAct(qkv, base + i, qt, LoadAct(qkv, base + i, qt) * inv * g[i]);
  }
}

/// One thread per (row, head, i < head_dim / 2): rotates the pair (i, i + half).
__global__ void RopeKernel(void* qkv, DType qt, int64_t rows, int64_t width, int rot_heads, int hd,
                           const int32_t* positions, const float* table) {
  const int half = hd / 2;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * rot_heads * half) return;
  const int64_t row = i / (static_cast<int64_t>(rot_heads) * half);
  const int rest = static_cast<int>(i % (static_cast<int64_t>(rot_heads) * half));
  const int h = rest / half, j = rest % half;
  const int64_t base = row * width + static_cast<int64_t>(h) * hd;
  const float* t = table + static_cast<int64_t>(positions[row]) * hd;
  const float c = t[j], s = t[half + j];
  const float x1 = LoadAct(qkv, base + j, qt), x2 = LoadAct(qkv, base + j + half, qt);
  StoreAct(qkv, base + j, qt, x1 * c - x2 * s);
  StoreAct(qkv, base + j + half, qt, x2 * c + x1 * s);
}

/// One thread per (row, element of the KV width).
template <typename T>
__global__ void KvAppendKernel(const void* qkv, DType qt, int64_t rows, int64_t width, int heads,
                               int kv_heads, int hd, const int32_t* row_slot,
                               const int32_t* positions, T* k_cache, T* v_cache,
                               int64_t slot_stride, int64_t head_stride) {
  const int64_t kv_w = static_cast<int64_t>(kv_heads) * hd;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * kv_w) return;
  const int64_t row = i / kv_w, e = i % kv_w;
  const int64_t kvh = e / hd, d = e % hd;
  const int64_t r = row * width;
  const int64_t dst = row_slot[row] * slot_stride + kvh * head_stride +
                      static_cast<int64_t>(positions[row]) * hd + d;
  k_cache[dst] = FromF<T>(LoadAct(qkv, r + static_cast<int64_t>(heads) * hd + e, qt));
  v_cache[dst] = FromF<T>(LoadAct(qkv, r + static_cast<int64_t>(heads + kv_heads) * hd + e, qt));
}

/// One warp per (row, head) over the Q, K and V heads: [QK-norm,] RoPE of Q and K written back
/// in place, K and V into the cache. The same arithmetic as QkNormKernel, RopeKernel and
/// KvAppendKernel one after the other.
template <typename T>
__global__ void RopeAppendKernel(RopeAppendArgs a) {
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const int nh = a.heads + 2 * a.kv_heads;
  if (w >= a.rows * nh) return;  // whole warps
  const int64_t row = w / nh;
  const int h = static_cast<int>(w % nh), hd = a.head_dim, half = hd / 2;
  const int64_t base = row * a.width + static_cast<int64_t>(h) * hd;
  const int64_t pos = a.positions[row];
  const int64_t cache_row = a.row_slot[row] * a.slot_stride + pos * hd;
  if (h >= a.heads + a.kv_heads) {  // a V head: into the cache as it is
    T* v = static_cast<T*>(a.v_cache) + cache_row + (h - a.heads - a.kv_heads) * a.head_stride;
    for (int i = lane; i < hd; i += 32) v[i] = FromF<T>(LoadAct(a.qkv, base + i, a.qkv_type));
    return;
  }
  float inv = 1.0f;
  const float* g = nullptr;
  if (a.q_gain != nullptr) {
    float ss = 0;
    for (int i = lane; i < hd; i += 32) {
      const float v = LoadAct(a.qkv, base + i, a.qkv_type);
      ss += v * v;
    }
    ss = WarpSum(ss);
    inv = 1.0f / sqrtf(ss / static_cast<float>(hd) + a.eps);
    g = h < a.heads ? a.q_gain : a.k_gain;
  }
  T* k = h >= a.heads ? static_cast<T*>(a.k_cache) + cache_row + (h - a.heads) * a.head_stride
                      : nullptr;
  const float* t = a.table + pos * hd;
  for (int j = lane; j < half; j += 32) {
    float x1 = LoadAct(a.qkv, base + j, a.qkv_type);
    float x2 = LoadAct(a.qkv, base + j + half, a.qkv_type);
    if (g != nullptr) {
      x1 = x1 * inv * g[j];
      x2 = x2 * inv * g[j + half];
    }
    const float c = t[j], s = t[half + j];
    const float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
    StoreAct(a.qkv, base + j, a.qkv_type, y1);
    StoreAct(a.qkv, base + j + half, a.qkv_type, y2);
    if (k != nullptr) {
      k[j] = FromF<T>(y1);
      k[j + half] = FromF<T>(y2);
    }
  }
}

template <typename T>
__global__ void SwiGluKernel(const void* gate_up, DType gt, T* out, int64_t rows, int64_t f) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * f) return;
  const int64_t t = i / f, c = i % f;
  const float g = LoadAct(gate_up, t * 2 * f + c, gt), u = LoadAct(gate_up, t * 2 * f + f + c, gt);
  out[i] = FromF<T>(g / (1.0f + expf(-g)) * u);
}

__global__ void AddKernel(float* acc, const float* in, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) acc[i] += in[i];
}

__global__ void SelectLastKernel(const float* x, float* out, const int32_t* last_row, int64_t seqs,
                                 int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= seqs * n) return;
  const int64_t s = i / n, c = i % n;
  out[i] = x[static_cast<int64_t>(last_row[s]) * n + c];
}

template <typename T>
__global__ void ConvertRowsKernel(const float* src, int64_t src_ld, T* dst, int64_t rows,
                                  int64_t cols) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * cols) return;
  dst[i] = FromF<T>(src[(i / cols) * src_ld + i % cols]);
}

/// Whether (v, i) beats (bv, bi): NaN never wins, ties go to the lower index.
__device__ __forceinline__ bool Better(float v, int64_t i, float bv, int64_t bi) {
  if (isnan(v)) return false;
  if (bi < 0) return true;
  return v > bv || (v == bv && i < bi);
}

/// One block per row.
__global__ void ArgmaxKernel(const float* logits, int32_t* out, int64_t n) {
  __shared__ float sv[kBlock];
  __shared__ int64_t si[kBlock];
  const float* l = logits + static_cast<int64_t>(blockIdx.x) * n;
  float bv = 0;
  int64_t bi = -1;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    if (Better(l[i], i, bv, bi)) {
      bv = l[i];
      bi = i;
    }
  }
  sv[threadIdx.x] = bv;
  si[threadIdx.x] = bi;
  __syncthreads();
  for (int s = kBlock / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float v = sv[threadIdx.x + s];
      const int64_t i = si[threadIdx.x + s];
      if (i >= 0 && Better(v, i, sv[threadIdx.x], si[threadIdx.x])) {
        sv[threadIdx.x] = v;
        si[threadIdx.x] = i;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<int32_t>(si[0]);
}

__global__ void GatherReorderKernel(const float* gathered, float* out, int tp, int64_t rows,
                                    int64_t local) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t width = tp * local;
  if (i >= rows * width) return;
  const int64_t row = i / width, col = i % width;
  const int64_t r = col / local, c = col % local;
  out[i] = gathered[(r * rows + row) * local + c];
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Host conversions

float RoundToDType(DType t, float v) {
  switch (t) {
    case DType::kBF16:
      return __bfloat162float(__float2bfloat16_rn(v));
    case DType::kF16:
      return __half2float(__float2half_rn(v));
    default:
      return v;
  }
}

void FromFloatHost(const float* src, DType t, size_t n, void* dst) {
  for (size_t i = 0; i < n; ++i) {
    if (t == DType::kBF16) {
      static_cast<__nv_bfloat16*>(dst)[i] = __float2bfloat16_rn(src[i]);
    } else if (t == DType::kF16) {
      static_cast<__half*>(dst)[i] = __float2half_rn(src[i]);
    } else {
      static_cast<float*>(dst)[i] = src[i];
    }
  }
}

void ToFloatHost(const void* src, DType t, size_t n, float* dst) {
  for (size_t i = 0; i < n; ++i) {
    if (t == DType::kBF16) {
      dst[i] = __bfloat162float(static_cast<const __nv_bfloat16*>(src)[i]);
    } else if (t == DType::kF16) {
      dst[i] = __half2float(static_cast<const __half*>(src)[i]);
    } else {
      dst[i] = static_cast<const float*>(src)[i];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Launchers

cudaError_t LaunchConvertF32(const float* src, void* dst, DType dst_type, int64_t n,
                             cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  return Dispatch(dst_type, [&](auto z) {
    using T = decltype(z);
    ConvertKernel<T><<<Blocks(n), kBlock, 0, stream>>>(src, static_cast<T*>(dst), n);
    return cudaGetLastError();
  });
}

cudaError_t LaunchToF32(const void* src, DType src_type, float* dst, int64_t n,
                        cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  return Dispatch(src_type, [&](auto z) {
    using T = decltype(z);
    ToF32Kernel<T><<<Blocks(n), kBlock, 0, stream>>>(static_cast<const T*>(src), dst, n);
    return cudaGetLastError();
  });
}

cudaError_t LaunchFillUniform(void* dst, DType type, int64_t n, uint64_t seed, float scale,
                              cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  return Dispatch(type, [&](auto z) {
    using T = decltype(z);
    FillUniformKernel<T><<<Blocks(n), kBlock, 0, stream>>>(static_cast<T*>(dst), n, seed, scale);
    return cudaGetLastError();
  });
}

cudaError_t LaunchEmbedding(const int32_t* tokens, int64_t rows, const void* table, DType type,
                            int64_t width, float* out, cudaStream_t stream) {
  if (rows * width == 0) return cudaSuccess;
  return Dispatch(type, [&](auto z) {
    using T = decltype(z);
    EmbeddingKernel<T><<<Blocks(rows * width), kBlock, 0, stream>>>(
        tokens, rows, static_cast<const T*>(table), width, out);
    return cudaGetLastError();
  });
}

cudaError_t LaunchRmsNorm(float* in, const float* residual, void* out, DType out_type,
                          const float* gain, int64_t rows, int64_t n, float eps,
                          cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  return Dispatch(out_type, [&](auto z) {
    using T = decltype(z);
    RmsNormKernel<T><<<static_cast<unsigned>(rows), kBlock, 0, stream>>>(
        in, residual, static_cast<T*>(out), gain, n, eps);
    return cudaGetLastError();
  });
}

cudaError_t LaunchQkNorm(void* qkv, DType qkv_type, int64_t rows, int64_t width, int64_t heads,
                         int64_t kv_heads, int64_t head_dim, const float* q_gain,
                         const float* k_gain, float eps, cudaStream_t stream) {
  const int64_t warps = rows * (heads + kv_heads);
  if (warps == 0) return cudaSuccess;
  QkNormKernel<<<Blocks(warps * 32), kBlock, 0, stream>>>(
      qkv, qkv_type, rows, width, static_cast<int>(heads), static_cast<int>(kv_heads),
      static_cast<int>(head_dim), q_gain, k_gain, eps);
  return cudaGetLastError();
}

cudaError_t LaunchRope(void* qkv, DType qkv_type, int64_t rows, int64_t width, int64_t rot_heads,
                       int64_t head_dim, const int32_t* positions, const float* table,
                       cudaStream_t stream) {
  const int64_t n = rows * rot_heads * (head_dim / 2);
  if (n == 0) return cudaSuccess;
  RopeKernel<<<Blocks(n), kBlock, 0, stream>>>(qkv, qkv_type, rows, width,
                                               static_cast<int>(rot_heads),
                                               static_cast<int>(head_dim), positions, table);
  return cudaGetLastError();
}

cudaError_t LaunchKvAppend(const void* qkv, DType qkv_type, int64_t rows, int64_t width,
                           int64_t heads, int64_t kv_heads, int64_t head_dim,
                           const int32_t* row_slot, const int32_t* positions, void* k_cache,
                           void* v_cache, DType type, int64_t slot_stride, int64_t head_stride,
                           cudaStream_t stream) {
  const int64_t n = rows * kv_heads * head_dim;
  if (n == 0) return cudaSuccess;
  return Dispatch(type, [&](auto z) {
    using T = decltype(z);
    KvAppendKernel<T><<<Blocks(n), kBlock, 0, stream>>>(
        qkv, qkv_type, rows, width, static_cast<int>(heads), static_cast<int>(kv_heads),
        static_cast<int>(head_dim), row_slot, positions, static_cast<T*>(k_cache),
        static_cast<T*>(v_cache), slot_stride, head_stride);
    return cudaGetLastError();
  });
}

cudaError_t LaunchRopeAppend(const RopeAppendArgs& a, cudaStream_t stream) {
  const int64_t warps = a.rows * (a.heads + 2 * a.kv_heads);
  if (warps == 0) return cudaSuccess;
  if (a.head_dim % 2 != 0) return cudaErrorInvalidValue;
  return Dispatch(a.cache_type, [&](auto z) {
    using T = decltype(z);
    RopeAppendKernel<T><<<Blocks(warps * 32), kBlock, 0, stream>>>(a);
    return cudaGetLastError();
  });
}

cudaError_t LaunchSwiGlu(const void* gate_up, DType gate_up_type, void* out, DType out_type,
                         int64_t rows, int64_t ffn, cudaStream_t stream) {
  if (rows * ffn == 0) return cudaSuccess;
  return Dispatch(out_type, [&](auto z) {
    using T = decltype(z);
    SwiGluKernel<T><<<Blocks(rows * ffn), kBlock, 0, stream>>>(gate_up, gate_up_type,
                                                               static_cast<T*>(out), rows, ffn);
    return cudaGetLastError();
  });
}

cudaError_t LaunchAdd(float* acc, const float* in, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  AddKernel<<<Blocks(n), kBlock, 0, stream>>>(acc, in, n);
  return cudaGetLastError();
}

cudaError_t LaunchSelectLast(const float* x, float* out, const int32_t* last_row, int64_t seqs,
                             int64_t n, cudaStream_t stream) {
  if (seqs * n == 0) return cudaSuccess;
  SelectLastKernel<<<Blocks(seqs * n), kBlock, 0, stream>>>(x, out, last_row, seqs, n);
  return cudaGetLastError();
}

cudaError_t LaunchArgmax(const float* logits, int32_t* out, int64_t seqs, int64_t n,
                         cudaStream_t stream) {
  if (seqs == 0) return cudaSuccess;
  ArgmaxKernel<<<static_cast<unsigned>(seqs), kBlock, 0, stream>>>(logits, out, n);
  return cudaGetLastError();
}

cudaError_t LaunchGatherReorder(const float* gathered, float* out, int tp, int64_t rows,
                                int64_t local, cudaStream_t stream) {
  const int64_t n = rows * tp * local;
  if (n == 0) return cudaSuccess;
  GatherReorderKernel<<<Blocks(n), kBlock, 0, stream>>>(gathered, out, tp, rows, local);
  return cudaGetLastError();
}

cudaError_t LaunchConvertRows(const float* src, int64_t src_ld, void* dst, DType type, int64_t rows,
                              int64_t cols, cudaStream_t stream) {
  if (rows * cols == 0) return cudaSuccess;
  return Dispatch(type, [&](auto z) {
    using T = decltype(z);
    ConvertRowsKernel<T>
        <<<Blocks(rows * cols), kBlock, 0, stream>>>(src, src_ld, static_cast<T*>(dst), rows, cols);
    return cudaGetLastError();
  });
}

}  // namespace cb::cuda
