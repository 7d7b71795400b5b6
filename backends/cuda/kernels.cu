// The CUDA backend's kernels: simple, one thread (or one warp, or one block) per obvious unit
// of work, fp32 arithmetic throughout, storage in fp32, bf16 or fp16. Matmuls are not here:
// they go to cuBLAS (cuda_session.cc).

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

#include "backends/cuda/kernels.h"

namespace cb::cuda {
namespace {

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
  }
  return cudaErrorInvalidValue;
}

unsigned Blocks(int64_t n, int block = kBlock) {
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

/// Sum over a block of kBlock threads; every thread gets the result.
__device__ float BlockSum(float v) {
  __shared__ float partial[kBlock / 32];
  __shared__ float total;
  v = WarpSum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < kBlock / 32 ? partial[lane] : 0.0f;
    s = WarpSum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

// ---------------------------------------------------------------------------------------------
// Element-wise and row kernels

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
__global__ void QkNormKernel(float* qkv, int64_t rows, int64_t width, int heads, int kv_heads,
                             int hd, const float* q_gain, const float* k_gain, float eps) {
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const int nh = heads + kv_heads;
  if (w >= rows * nh) return;  // whole warps
  const int64_t row = w / nh;
  const int h = static_cast<int>(w % nh);
  float* x = qkv + row * width + static_cast<int64_t>(h) * hd;
  float ss = 0;
  for (int i = lane; i < hd; i += 32) ss += x[i] * x[i];
  ss = WarpSum(ss);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(hd) + eps);
  const float* g = h < heads ? q_gain : k_gain;
  for (int i = lane; i < hd; i += 32) x[i] = x[i] * inv * g[i];
}

/// One thread per (row, head, i < head_dim / 2): rotates the pair (i, i + half).
__global__ void RopeKernel(float* qkv, int64_t rows, int64_t width, int rot_heads, int hd,
                           const int32_t* positions, const float* table) {
  const int half = hd / 2;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * rot_heads * half) return;
  const int64_t row = i / (static_cast<int64_t>(rot_heads) * half);
  const int rest = static_cast<int>(i % (static_cast<int64_t>(rot_heads) * half));
  const int h = rest / half, j = rest % half;
  float* x = qkv + row * width + static_cast<int64_t>(h) * hd;
  const float* t = table + static_cast<int64_t>(positions[row]) * hd;
  const float c = t[j], s = t[half + j];
  const float x1 = x[j], x2 = x[j + half];
  x[j] = x1 * c - x2 * s;
  x[j + half] = x2 * c + x1 * s;
}

/// One thread per (row, element of the KV width).
template <typename T>
__global__ void KvAppendKernel(const float* qkv, int64_t rows, int64_t width, int heads,
                               int kv_heads, int hd, const int32_t* row_slot,
                               const int32_t* positions, T* k_cache, T* v_cache,
                               int64_t slot_stride, int64_t head_stride) {
  const int64_t kv_w = static_cast<int64_t>(kv_heads) * hd;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * kv_w) return;
  const int64_t row = i / kv_w, e = i % kv_w;
  const int64_t kvh = e / hd, d = e % hd;
  const float* r = qkv + row * width;
  const int64_t dst = row_slot[row] * slot_stride + kvh * head_stride +
                      static_cast<int64_t>(positions[row]) * hd + d;
  k_cache[dst] = FromF<T>(r[static_cast<int64_t>(heads) * hd + e]);
  v_cache[dst] = FromF<T>(r[static_cast<int64_t>(heads + kv_heads) * hd + e]);
}

template <typename T>
__global__ void SwiGluKernel(const float* gate_up, T* out, int64_t rows, int64_t f) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * f) return;
  const int64_t t = i / f, c = i % f;
  const float g = gate_up[t * 2 * f + c], u = gate_up[t * 2 * f + f + c];
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

/// One block per score row.
template <typename T>
__global__ void CausalSoftmaxKernel(const float* s, T* p, int64_t n, int64_t len, int64_t past,
                                    float scale) {
  __shared__ float red[kBlock / 32];
  const int64_t row = blockIdx.x;  // over batch * n
  const int64_t visible = past + row % n + 1;
  const float* x = s + row * len;
  T* y = p + row * len;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) mx = fmaxf(mx, x[j] * scale);
  mx = WarpMax(mx);
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  mx = red[0];
  for (int w = 1; w < kBlock / 32; ++w) mx = fmaxf(mx, red[w]);
  __syncthreads();
  float sum = 0;
  for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) sum += expf(x[j] * scale - mx);
  sum = BlockSum(sum);
  const float inv = 1.0f / sum;
  for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
    y[j] = FromF<T>(j < visible ? expf(x[j] * scale - mx) * inv : 0.0f);
  }
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

// ---------------------------------------------------------------------------------------------
// Attention: flash-style tiles with an online softmax in fp32.
//
// A block serves one query tile (up to rows_per_tile consecutive new rows of one sequence) and
// heads_per_block query heads of one KV head; blockIdx.z is the split-K chunk of the keys.
// Every new K and V is already in the cache (KvAppendKernel runs first), so prefill and decode
// are the same computation: query row r at position p attends to cache positions [0, p].
// The block stages 32 keys and values at a time in shared memory (as fp32); each warp holds up
// to kAttnItemsPerWarp (row, head) items: lane j scores key j, a warp max/sum updates the
// running max and denominator, and each lane accumulates head_dim / 32 output dimensions.

template <typename T>
__global__ void __launch_bounds__(kAttnWarps * 32) AttentionKernel(AttentionArgs a) {
  extern __shared__ float smem[];
  const int hd = a.head_dim;
  float* sq = smem;                       // [kAttnItems][hd], pre-scaled
  float* sk = sq + kAttnItems * hd;       // [kAttnKeys][hd + 1]
  float* sv = sk + kAttnKeys * (hd + 1);  // [kAttnKeys][hd]

  const int32_t* tile = a.tiles + 4 * blockIdx.x;
  const int first_row = tile[0], rows = tile[1], slot = tile[2], pos0 = tile[3];
  const AttentionTiling& t = a.tiling;
  const int kvh = blockIdx.y / t.head_chunks, chunk = blockIdx.y % t.head_chunks;
  const int head0 = kvh * t.group + chunk * t.heads_per_block;  // first query head of the block
  const int heads_here = min(t.heads_per_block, t.group - chunk * t.heads_per_block);
  const int items = rows * t.heads_per_block;  // item = r * heads_per_block + hh

  for (int e = threadIdx.x; e < kAttnItems * hd; e += blockDim.x) {
    const int item = e / hd, d = e % hd;
    const int r = item / t.heads_per_block, hh = item % t.heads_per_block;
    float v = 0;
    if (item < items && hh < heads_here) {
      v = a.qkv[static_cast<int64_t>(first_row + r) * a.qkv_width +
                static_cast<int64_t>(head0 + hh) * hd + d] *
          a.scale;
    }
    sq[e] = v;
  }

  // Keys [k_begin, k_end) of this split; the last row of the tile sees [0, pos0 + rows).
  const int len = pos0 + rows;
  int chunk_len = (len + a.splits - 1) / a.splits;
  chunk_len = (chunk_len + kAttnKeys - 1) / kAttnKeys * kAttnKeys;
  const int k_begin = blockIdx.z * chunk_len;
  const int k_end = min(len, k_begin + chunk_len);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  constexpr int kDims = kAttnMaxHeadDim / 32;
  float m[kAttnItemsPerWarp], l[kAttnItemsPerWarp], o[kAttnItemsPerWarp][kDims];
#pragma unroll
  for (int it = 0; it < kAttnItemsPerWarp; ++it) {
    m[it] = -INFINITY;
    l[it] = 0;
#pragma unroll
    for (int i = 0; i < kDims; ++i) o[it][i] = 0;
  }

  const T* kbase = static_cast<const T*>(a.k_cache) + static_cast<int64_t>(slot) * a.slot_stride +
                   static_cast<int64_t>(kvh) * a.head_stride;
  const T* vbase = static_cast<const T*>(a.v_cache) + static_cast<int64_t>(slot) * a.slot_stride +
                   static_cast<int64_t>(kvh) * a.head_stride;

  for (int k0 = k_begin; k0 < k_end; k0 += kAttnKeys) {
    __syncthreads();  // the previous tile is consumed (and sq is written, first time round)
    for (int e = threadIdx.x; e < kAttnKeys * hd; e += blockDim.x) {
      const int j = e / hd, d = e % hd, p = k0 + j;
      float kv = 0, vv = 0;
      if (p < k_end) {
        kv = ToF(kbase[static_cast<int64_t>(p) * hd + d]);
        vv = ToF(vbase[static_cast<int64_t>(p) * hd + d]);
      }
      sk[j * (hd + 1) + d] = kv;
      sv[j * hd + d] = vv;
    }
    __syncthreads();
#pragma unroll
    for (int it = 0; it < kAttnItemsPerWarp; ++it) {
      const int item = warp + it * kAttnWarps;  // the same for the whole warp
      if (item >= items || item % t.heads_per_block >= heads_here) continue;
      const int qpos = pos0 + item / t.heads_per_block;
      const int p = k0 + lane;
      float s = -INFINITY;
      if (p < k_end && p <= qpos) {
        const float* q = sq + item * hd;
        const float* k = sk + lane * (hd + 1);
        float dot = 0;
        for (int d = 0; d < hd; ++d) dot += q[d] * k[d];
        s = dot;
      }
      const float mx = WarpMax(s);
      if (mx == -INFINITY) continue;  // no visible key in this tile for this row
      const float m_new = fmaxf(m[it], mx);
      const float corr = expf(m[it] - m_new);  // 0 while m[it] is -inf
      const float pj = s == -INFINITY ? 0.0f : expf(s - m_new);
      l[it] = l[it] * corr + WarpSum(pj);
#pragma unroll
      for (int i = 0; i < kDims; ++i) o[it][i] *= corr;
      for (int j = 0; j < kAttnKeys; ++j) {
        const float pb = __shfl_sync(kFullMask, pj, j);
#pragma unroll
        for (int i = 0; i < kDims; ++i) {
          const int d = lane + 32 * i;
          if (d < hd) o[it][i] += pb * sv[j * hd + d];
        }
      }
      m[it] = m_new;
    }
  }

  const int64_t out_w = static_cast<int64_t>(a.heads) * hd;
#pragma unroll
  for (int it = 0; it < kAttnItemsPerWarp; ++it) {
    const int item = warp + it * kAttnWarps;
    if (item >= items || item % t.heads_per_block >= heads_here) continue;
    const int64_t row = first_row + item / t.heads_per_block;
    const int h = head0 + item % t.heads_per_block;
    if (a.splits == 1) {
      T* out = static_cast<T*>(a.out) + row * out_w + static_cast<int64_t>(h) * hd;
      const float inv = 1.0f / l[it];  // key 0 is always visible: l > 0
#pragma unroll
      for (int i = 0; i < kDims; ++i) {
        const int d = lane + 32 * i;
        if (d < hd) out[d] = FromF<T>(o[it][i] * inv);
      }
    } else {
      float* p =
          a.partial +
          ((static_cast<int64_t>(blockIdx.z) * a.partial_rows + row) * a.heads + h) * (hd + 2);
#pragma unroll
      for (int i = 0; i < kDims; ++i) {
        const int d = lane + 32 * i;
        if (d < hd) p[d] = o[it][i];
      }
      if (lane == 0) {
        p[hd] = m[it];
        p[hd + 1] = l[it];
      }
    }
  }
}

/// One block per (row, head), one thread per dimension: merges the split-K partials.
template <typename T>
__global__ void AttentionCombineKernel(const float* partial, int splits, int64_t partial_rows,
                                       int heads, int hd, T* out) {
  const int64_t row = blockIdx.x;
  const int h = blockIdx.y, d = threadIdx.x;
  const int64_t stride = hd + 2;
  auto at = [&](int s) { return partial + ((s * partial_rows + row) * heads + h) * stride; };
  float mx = -INFINITY;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, at(s)[hd]);
  if (d >= hd) return;
  float den = 0, acc = 0;
  for (int s = 0; s < splits; ++s) {
    const float* p = at(s);
    const float w = p[hd] == -INFINITY ? 0.0f : expf(p[hd] - mx);
    den += w * p[hd + 1];
    acc += w * p[d];
  }
  out[row * heads * hd + static_cast<int64_t>(h) * hd + d] = FromF<T>(acc / den);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Launchers

AttentionTiling MakeAttentionTiling(int64_t heads, int64_t kv_heads) {
  AttentionTiling t;
  t.group = static_cast<int>(heads / kv_heads);
  t.heads_per_block = std::min(t.group, kAttnItems);
  t.head_chunks = (t.group + t.heads_per_block - 1) / t.heads_per_block;
  t.rows_per_tile = std::max(1, kAttnItems / t.heads_per_block);
  return t;
}

int ChooseAttentionSplits(int64_t blocks, int64_t max_len, int64_t rows, int sms) {
  if (rows > kAttnMaxSplitRows || blocks <= 0) return 1;
  const int64_t target = 2 * static_cast<int64_t>(std::max(sms, 1));
  if (blocks >= target) return 1;
  const int64_t by_blocks = (target + blocks - 1) / blocks;
  const int64_t by_len = (max_len + 127) / 128;  // at least 128 keys per chunk
  const int64_t s = std::min<int64_t>({by_blocks, by_len, kAttnMaxSplits});
  return static_cast<int>(std::max<int64_t>(1, s));
}

float RoundToDType(DType t, float v) {
  switch (t) {
    case DType::kBF16:
      return __bfloat162float(__float2bfloat16_rn(v));
    case DType::kF16:
      return __half2float(__float2half_rn(v));
    case DType::kF32:
      break;
  }
  return v;
}

void FromFloatHost(const float* src, DType t, size_t n, void* dst) {
  for (size_t i = 0; i < n; ++i) {
    switch (t) {
      case DType::kF32:
        static_cast<float*>(dst)[i] = src[i];
        break;
      case DType::kBF16:
        static_cast<__nv_bfloat16*>(dst)[i] = __float2bfloat16_rn(src[i]);
        break;
      case DType::kF16:
        static_cast<__half*>(dst)[i] = __float2half_rn(src[i]);
        break;
    }
  }
}

void ToFloatHost(const void* src, DType t, size_t n, float* dst) {
  for (size_t i = 0; i < n; ++i) {
    switch (t) {
      case DType::kF32:
        dst[i] = static_cast<const float*>(src)[i];
        break;
      case DType::kBF16:
        dst[i] = __bfloat162float(static_cast<const __nv_bfloat16*>(src)[i]);
        break;
      case DType::kF16:
        dst[i] = __half2float(static_cast<const __half*>(src)[i]);
        break;
    }
  }
}

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

cudaError_t LaunchQkNorm(float* qkv, int64_t rows, int64_t width, int64_t heads, int64_t kv_heads,
                         int64_t head_dim, const float* q_gain, const float* k_gain, float eps,
                         cudaStream_t stream) {
  const int64_t warps = rows * (heads + kv_heads);
  if (warps == 0) return cudaSuccess;
  QkNormKernel<<<Blocks(warps * 32), kBlock, 0, stream>>>(
      qkv, rows, width, static_cast<int>(heads), static_cast<int>(kv_heads),
      static_cast<int>(head_dim), q_gain, k_gain, eps);
  return cudaGetLastError();
}

cudaError_t LaunchRope(float* qkv, int64_t rows, int64_t width, int64_t rot_heads, int64_t head_dim,
                       const int32_t* positions, const float* table, cudaStream_t stream) {
  const int64_t n = rows * rot_heads * (head_dim / 2);
  if (n == 0) return cudaSuccess;
  RopeKernel<<<Blocks(n), kBlock, 0, stream>>>(qkv, rows, width, static_cast<int>(rot_heads),
                                               static_cast<int>(head_dim), positions, table);
  return cudaGetLastError();
}

cudaError_t LaunchKvAppend(const float* qkv, int64_t rows, int64_t width, int64_t heads,
                           int64_t kv_heads, int64_t head_dim, const int32_t* row_slot,
                           const int32_t* positions, void* k_cache, void* v_cache, DType type,
                           int64_t slot_stride, int64_t head_stride, cudaStream_t stream) {
  const int64_t n = rows * kv_heads * head_dim;
  if (n == 0) return cudaSuccess;
  return Dispatch(type, [&](auto z) {
    using T = decltype(z);
    KvAppendKernel<T><<<Blocks(n), kBlock, 0, stream>>>(
        qkv, rows, width, static_cast<int>(heads), static_cast<int>(kv_heads),
        static_cast<int>(head_dim), row_slot, positions, static_cast<T*>(k_cache),
        static_cast<T*>(v_cache), slot_stride, head_stride);
    return cudaGetLastError();
  });
}

cudaError_t LaunchAttention(const AttentionArgs& a, cudaStream_t stream) {
  if (a.head_dim > kAttnMaxHeadDim || a.head_dim < 1 || a.splits < 1 || a.splits > kAttnMaxSplits ||
      (a.splits > 1 && a.partial == nullptr)) {
    return cudaErrorInvalidValue;
  }
  if (a.num_tiles == 0) return cudaSuccess;
  const size_t smem = sizeof(float) * (kAttnItems * a.head_dim + kAttnKeys * (a.head_dim + 1) +
                                       kAttnKeys * a.head_dim);
  const dim3 grid(static_cast<unsigned>(a.num_tiles),
                  static_cast<unsigned>(a.kv_heads * a.tiling.head_chunks),
                  static_cast<unsigned>(a.splits));
  return Dispatch(a.dtype, [&](auto z) {
    using T = decltype(z);
    AttentionKernel<T><<<grid, kAttnWarps * 32, smem, stream>>>(a);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess || a.splits == 1) return e;
    const dim3 cgrid(static_cast<unsigned>(a.rows), static_cast<unsigned>(a.heads));
    AttentionCombineKernel<T><<<cgrid, kAttnMaxHeadDim, 0, stream>>>(
        a.partial, a.splits, a.partial_rows, a.heads, a.head_dim, static_cast<T*>(a.out));
    return cudaGetLastError();
  });
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

cudaError_t LaunchCausalSoftmax(const float* s, void* p, DType type, int64_t batch, int64_t n,
                                int64_t len, int64_t past, float scale, cudaStream_t stream) {
  if (batch * n == 0) return cudaSuccess;
  return Dispatch(type, [&](auto z) {
    using T = decltype(z);
    CausalSoftmaxKernel<T><<<static_cast<unsigned>(batch * n), kBlock, 0, stream>>>(
        s, static_cast<T*>(p), n, len, past, scale);
    return cudaGetLastError();
  });
}

cudaError_t LaunchSwiGlu(const float* gate_up, void* out, DType out_type, int64_t rows, int64_t ffn,
                         cudaStream_t stream) {
  if (rows * ffn == 0) return cudaSuccess;
  return Dispatch(out_type, [&](auto z) {
    using T = decltype(z);
    SwiGluKernel<T>
        <<<Blocks(rows * ffn), kBlock, 0, stream>>>(gate_up, static_cast<T*>(out), rows, ffn);
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

}  // namespace cb::cuda
