// Attention on CUDA cores, with an online softmax in fp32: the tiled kernel (any step), the
// decode kernel (one query row per block, 16-byte loads over 8 warps), the split-K combine,
// and the causal softmax of the cuBLAS prefill path. Every new K and V is already in the
// cache when these run, so query row r at position p attends to cache positions [0, p].

#include <algorithm>
#include <cmath>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/kernels.h"

namespace cb::cuda {
namespace {

using dev::BlockSum;
using dev::Dispatch;
using dev::FromF;
using dev::kBlock;
using dev::kFullMask;
using dev::LoadAct;
using dev::ToF;
using dev::WarpMax;
using dev::WarpSum;

// The tiled kernel. A block serves one query tile (up to rows_per_tile consecutive new rows of
// one sequence) and heads_per_block query heads of one KV head; blockIdx.z is the split-K chunk
// of the keys. The block stages 32 keys and values at a time in shared memory (as fp32); each
// warp holds up to kAttnItemsPerWarp (row, head) items: lane j scores key j, a warp max/sum
// updates the running max and denominator, and each lane accumulates head_dim / 32 output
// dimensions.
constexpr int kAttnDims = kAttnMaxHeadDim / 32;  // output dimensions per lane

/// Where a block of the tiled kernel works: its tile, KV head and query heads.
struct TiledBlock {
  int first_row, rows, slot, pos0;
  int kvh, head0, heads_here, items;  ///< item = r * heads_per_block + hh
  __device__ explicit TiledBlock(const AttentionArgs& a) {
    const int32_t* tile = a.tiles + 4 * blockIdx.x;
    first_row = tile[0];
    rows = tile[1];
    slot = tile[2];
    pos0 = tile[3];
    const AttentionTiling& t = a.tiling;
    kvh = blockIdx.y / t.head_chunks;
    const int chunk = blockIdx.y % t.head_chunks;
    head0 = kvh * t.group + chunk * t.heads_per_block;
    heads_here = min(t.heads_per_block, t.group - chunk * t.heads_per_block);
    items = rows * t.heads_per_block;
  }
  __device__ bool Serves(int item, const AttentionTiling& t) const {
    return item < items && item % t.heads_per_block < heads_here;
  }
};

/// The block's queries, pre-scaled, into sq [kAttnItems][hd] (zeros for items it does not
/// serve).
__device__ __forceinline__ void StageQueries(const AttentionArgs& a, const TiledBlock& b,
                                             float* sq) {
  const int hd = a.head_dim;
  for (int e = threadIdx.x; e < kAttnItems * hd; e += blockDim.x) {
    const int item = e / hd, d = e % hd;
    const int r = item / a.tiling.heads_per_block, hh = item % a.tiling.heads_per_block;
    float v = 0;
    if (b.Serves(item, a.tiling)) {
      v = LoadAct(a.qkv,
                  static_cast<int64_t>(b.first_row + r) * a.qkv_width +
                      static_cast<int64_t>(b.head0 + hh) * hd + d,
                  a.qkv_type) *
          a.scale;
    }
    sq[e] = v;
  }
}

/// One warp's online-softmax update of item `it` (query position qpos) with the 32 staged keys
/// [k0, k0 + 32) that exist up to k_end.
__device__ __forceinline__ void UpdateItem(const float* q, const float* sk, const float* sv, int hd,
                                           int k0, int k_end, int qpos, float& m, float& l,
                                           float (&o)[kAttnDims]) {
  const int lane = threadIdx.x % 32, p = k0 + lane;
  float s = -INFINITY;
  if (p < k_end && p <= qpos) {
    const float* k = sk + lane * (hd + 1);
    float dot = 0;
    for (int d = 0; d < hd; ++d) dot += q[d] * k[d];
    s = dot;
  }
  const float mx = WarpMax(s);
  if (mx == -INFINITY) return;  // no visible key in this tile for this row
  const float m_new = fmaxf(m, mx);
  const float corr = expf(m - m_new);  // 0 while m is -inf
  const float pj = s == -INFINITY ? 0.0f : expf(s - m_new);
  l = l * corr + WarpSum(pj);
#pragma unroll
  for (int i = 0; i < kAttnDims; ++i) o[i] *= corr;
  for (int j = 0; j < kAttnKeys; ++j) {
    const float pb = __shfl_sync(kFullMask, pj, j);
#pragma unroll
    for (int i = 0; i < kAttnDims; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) o[i] += pb * sv[j * hd + d];
    }
  }
  m = m_new;
}

/// Item `it`'s output (one split) or its partial (o, max, sum) for the combine kernel.
template <typename T>
__device__ __forceinline__ void WriteItem(const AttentionArgs& a, const TiledBlock& b, int item,
                                          float m, float l, const float (&o)[kAttnDims]) {
  const int hd = a.head_dim, lane = threadIdx.x % 32;
  const int64_t row = b.first_row + item / a.tiling.heads_per_block;
  const int h = b.head0 + item % a.tiling.heads_per_block;
  if (a.splits == 1) {
    T* out = static_cast<T*>(a.out) + (row * a.heads + h) * hd;
    const float inv = 1.0f / l;  // key 0 is always visible: l > 0
#pragma unroll
    for (int i = 0; i < kAttnDims; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) out[d] = FromF<T>(o[i] * inv);
    }
    return;
  }
  float* p = a.partial +
             ((static_cast<int64_t>(blockIdx.z) * a.partial_rows + row) * a.heads + h) * (hd + 2);
#pragma unroll
  for (int i = 0; i < kAttnDims; ++i) {
    const int d = lane + 32 * i;
    if (d < hd) p[d] = o[i];
  }
  if (lane == 0) {
    p[hd] = m;
    p[hd + 1] = l;
  }
}

template <typename T>
__global__ void __launch_bounds__(kAttnWarps * 32) AttentionKernel(AttentionArgs a) {
  extern __shared__ float smem[];
  const int hd = a.head_dim;
  float* sq = smem;                       // [kAttnItems][hd], pre-scaled
  float* sk = sq + kAttnItems * hd;       // [kAttnKeys][hd + 1]
  float* sv = sk + kAttnKeys * (hd + 1);  // [kAttnKeys][hd]
  const TiledBlock b(a);
  StageQueries(a, b, sq);

  // Keys [k_begin, k_end) of this split; the last row of the tile sees [0, pos0 + rows).
  const int len = b.pos0 + b.rows;
  int chunk_len = (len + a.splits - 1) / a.splits;
  chunk_len = (chunk_len + kAttnKeys - 1) / kAttnKeys * kAttnKeys;
  const int k_begin = blockIdx.z * chunk_len;
  const int k_end = min(len, k_begin + chunk_len);

  const int warp = threadIdx.x / 32;
  float m[kAttnItemsPerWarp], l[kAttnItemsPerWarp], o[kAttnItemsPerWarp][kAttnDims];
#pragma unroll
  for (int it = 0; it < kAttnItemsPerWarp; ++it) {
    m[it] = -INFINITY;
    l[it] = 0;
#pragma unroll
    for (int i = 0; i < kAttnDims; ++i) o[it][i] = 0;
  }
  const int64_t base =
      static_cast<int64_t>(b.slot) * a.slot_stride + static_cast<int64_t>(b.kvh) * a.head_stride;
  const T* kbase = static_cast<const T*>(a.k_cache) + base;
  const T* vbase = static_cast<const T*>(a.v_cache) + base;
  for (int k0 = k_begin; k0 < k_end; k0 += kAttnKeys) {
    __syncthreads();  // the previous tile is consumed (and sq is written, first time round)
    for (int e = threadIdx.x; e < kAttnKeys * hd; e += blockDim.x) {
      const int j = e / hd, d = e % hd, p = k0 + j;
      sk[j * (hd + 1) + d] = p < k_end ? ToF(kbase[static_cast<int64_t>(p) * hd + d]) : 0.0f;
      sv[j * hd + d] = p < k_end ? ToF(vbase[static_cast<int64_t>(p) * hd + d]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int it = 0; it < kAttnItemsPerWarp; ++it) {
      const int item = warp + it * kAttnWarps;  // the same for the whole warp
      if (!b.Serves(item, a.tiling)) continue;
      UpdateItem(sq + item * hd, sk, sv, hd, k0, k_end, b.pos0 + item / a.tiling.heads_per_block,
                 m[it], l[it], o[it]);
    }
  }
#pragma unroll
  for (int it = 0; it < kAttnItemsPerWarp; ++it) {
    const int item = warp + it * kAttnWarps;
    if (b.Serves(item, a.tiling)) WriteItem<T>(a, b, item, m[it], l[it], o[it]);
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

/// Merges (m, l, o) with another (m2, l2, o2) of the same head's online softmax.
template <int V>
__device__ __forceinline__ void MergeSoftmax(float& m, float& l, float* o, float m2, float l2,
                                             const float* o2) {
  const float mn = fmaxf(m, m2);
  const float ca = m == -INFINITY ? 0.0f : expf(m - mn);
  const float cb = m2 == -INFINITY ? 0.0f : expf(m2 - mn);
  l = l * ca + l2 * cb;
#pragma unroll
  for (int e = 0; e < V; ++e) o[e] = o[e] * ca + o2[e] * cb;
  m = mn;
}

// The decode kernel: one block per (query row, KV head, head chunk, split), 8 warps. A group of
// `lanes` lanes holds one key's head_dim with 16-byte loads (V elements a lane), so a warp
// scores 32 / lanes keys at a time for up to H query heads of the KV head; each lane group
// keeps its own online softmax, merged across the warp with shuffles and across the warps in
// shared memory.
template <typename T, int H>
struct DecodeState {
  static constexpr int V = dev::VecOf<T>();
  float q[H][V], m[H], l[H], o[H][V];
};

/// Scores keys [k_begin, k_end) of the lane's key slot (`kslot` of every 32 / lanes keys a warp
/// takes), `d0` the first of the lane's V dimensions, into the lane group's online softmax.
template <typename T, int H>
__device__ __forceinline__ void DecodeKeys(const AttentionArgs& a, const T* kbase, const T* vbase,
                                           int64_t k_begin, int64_t k_end, int lanes, int nh,
                                           DecodeState<T, H>& st) {
  constexpr int V = DecodeState<T, H>::V;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, keys_per_warp = 32 / lanes;
  const int kslot = lane / lanes, d0 = (lane % lanes) * V;
  const int64_t step = static_cast<int64_t>(kDecodeWarps) * keys_per_warp;
#pragma unroll 2
  for (int64_t p0 = k_begin + warp * keys_per_warp; p0 < k_end; p0 += step) {
    const int64_t p = p0 + kslot;
    const bool valid = p < k_end;
    uint4 kv = make_uint4(0, 0, 0, 0), vv = kv;
    if (valid && d0 < a.head_dim) {
      kv = *reinterpret_cast<const uint4*>(kbase + p * a.head_dim + d0);
      vv = *reinterpret_cast<const uint4*>(vbase + p * a.head_dim + d0);
    }
    float kf[V], vf[V];
    dev::Unpack<T>(kv, kf);
    dev::Unpack<T>(vv, vf);
#pragma unroll
    for (int h = 0; h < H; ++h) {
      float s = 0;
#pragma unroll
      for (int e = 0; e < V; ++e) s += st.q[h][e] * kf[e];
      for (int off = 1; off < lanes; off <<= 1) s += __shfl_xor_sync(kFullMask, s, off);
      s *= a.scale;
      if (valid && h < nh) MergeSoftmax<V>(st.m[h], st.l[h], st.o[h], s, 1.0f, vf);
    }
  }
}

/// The warp's key groups into one, then each warp's (o, m, l) into shared memory.
template <typename T, int H>
__device__ __forceinline__ void DecodeMergeWarp(DecodeState<T, H>& st, int lanes, int nh,
                                                int heads_per_block, int hd, float* merge) {
  constexpr int V = DecodeState<T, H>::V;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, d0 = (lane % lanes) * V;
  for (int off = lanes; off < 32; off <<= 1) {
#pragma unroll
    for (int h = 0; h < H; ++h) {
      float o2[V];
#pragma unroll
      for (int e = 0; e < V; ++e) o2[e] = __shfl_xor_sync(kFullMask, st.o[h][e], off);
      const float m2 = __shfl_xor_sync(kFullMask, st.m[h], off);
      const float l2 = __shfl_xor_sync(kFullMask, st.l[h], off);
      MergeSoftmax<V>(st.m[h], st.l[h], st.o[h], m2, l2, o2);
    }
  }
#pragma unroll
  for (int h = 0; h < H; ++h) {
    float* w = merge + (warp * heads_per_block + h) * (hd + 2);
    if (h < nh && lane < lanes && d0 < hd) {
#pragma unroll
      for (int e = 0; e < V; ++e) w[d0 + e] = st.o[h][e];
    }
    if (h < nh && lane == 0) {
      w[hd] = st.m[h];
      w[hd + 1] = st.l[h];
    }
  }
}

/// Merges the warps' results of each (head, dimension) and writes the output (one split) or
/// the split's partial (o, max, sum) for the combine kernel.
template <typename T>
__device__ __forceinline__ void DecodeMergeBlock(const AttentionArgs& a, const float* merge,
                                                 int64_t row, int head0, int nh,
                                                 int heads_per_block) {
  const int hd = a.head_dim, stride = hd + 2;
  for (int idx = threadIdx.x; idx < nh * hd; idx += blockDim.x) {
    const int h = idx / hd, d = idx % hd;
    float mx = -INFINITY;
    for (int w = 0; w < kDecodeWarps; ++w) {
      mx = fmaxf(mx, merge[(w * heads_per_block + h) * stride + hd]);
    }
    float den = 0, acc = 0;
    for (int w = 0; w < kDecodeWarps; ++w) {
      const float* s = merge + (w * heads_per_block + h) * stride;
      if (s[hd] == -INFINITY) continue;
      const float c = expf(s[hd] - mx);
      den += c * s[hd + 1];
      acc += c * s[d];
    }
    const int head = head0 + h;
    if (a.splits == 1) {
      static_cast<T*>(a.out)[(row * a.heads + head) * hd + d] = FromF<T>(acc / den);
    } else {
      float* p =
          a.partial +
          ((static_cast<int64_t>(blockIdx.z) * a.partial_rows + row) * a.heads + head) * stride;
      p[d] = acc;
      if (d == 0) {
        p[hd] = mx;
        p[hd + 1] = den;
      }
    }
  }
}

template <typename T, int H>
__global__ void __launch_bounds__(kDecodeWarps * 32)
    DecodeAttentionKernel(AttentionArgs a, int lanes, int heads_per_block, int head_chunks) {
  extern __shared__ float merge[];  // [warps][heads_per_block][hd + 2]: o, m, l
  constexpr int V = DecodeState<T, H>::V;
  const int hd = a.head_dim, lane = threadIdx.x % 32, d0 = (lane % lanes) * V;
  const int64_t row = blockIdx.x;
  const int kvh = blockIdx.y / head_chunks, chunk = blockIdx.y % head_chunks;
  const int group = a.heads / a.kv_heads;
  const int head0 = kvh * group + chunk * heads_per_block;
  const int nh = min(heads_per_block, group - chunk * heads_per_block);

  const int64_t len = static_cast<int64_t>(a.positions[row]) + 1;
  const int64_t chunk_len = (len + a.splits - 1) / a.splits;
  const int64_t k_begin = blockIdx.z * chunk_len, k_end = min(len, k_begin + chunk_len);

  DecodeState<T, H> st;
#pragma unroll
  for (int h = 0; h < H; ++h) {
    st.m[h] = -INFINITY;
    st.l[h] = 0;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      st.o[h][e] = 0;
      st.q[h][e] =
          h < nh && d0 < hd
              ? LoadAct(a.qkv, row * a.qkv_width + static_cast<int64_t>(head0 + h) * hd + d0 + e,
                        a.qkv_type)
              : 0.0f;
    }
  }
  const int64_t base = static_cast<int64_t>(a.row_slot[row]) * a.slot_stride +
                       static_cast<int64_t>(kvh) * a.head_stride;
  DecodeKeys<T, H>(a, static_cast<const T*>(a.k_cache) + base,
                   static_cast<const T*>(a.v_cache) + base, k_begin, k_end, lanes, nh, st);
  DecodeMergeWarp<T, H>(st, lanes, nh, heads_per_block, hd, merge);
  __syncthreads();
  DecodeMergeBlock<T>(a, merge, row, head0, nh, heads_per_block);
}

template <typename T>
cudaError_t Combine(const AttentionArgs& a, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(a.rows), static_cast<unsigned>(a.heads));
  AttentionCombineKernel<T><<<grid, kAttnMaxHeadDim, 0, stream>>>(
      a.partial, a.splits, a.partial_rows, a.heads, a.head_dim, static_cast<T*>(a.out));
  return cudaGetLastError();
}

bool ArgsOk(const AttentionArgs& a) {
  return a.head_dim <= kAttnMaxHeadDim && a.head_dim >= 1 && a.splits >= 1 &&
         a.splits <= kAttnMaxSplits && (a.splits == 1 || a.partial != nullptr);
}

}  // namespace

cudaError_t LaunchAttention(const AttentionArgs& a, cudaStream_t stream) {
  if (!ArgsOk(a)) return cudaErrorInvalidValue;
  if (a.num_tiles == 0) return cudaSuccess;
  const size_t smem = sizeof(float) * (kAttnItems * a.head_dim + kAttnKeys * (a.head_dim + 1) +
                                       kAttnKeys * a.head_dim);
  const dim3 grid(static_cast<unsigned>(a.num_tiles),
                  static_cast<unsigned>(a.kv_heads * a.tiling.head_chunks),
                  static_cast<unsigned>(a.splits));
  return Dispatch(a.dtype, [&](auto z) {
    using T = decltype(z);
    AttentionKernel<T><<<grid, kAttnWarps * 32, smem, stream>>>(a);
    const cudaError_t e = cudaGetLastError();
    return e != cudaSuccess || a.splits == 1 ? e : Combine<T>(a, stream);
  });
}

cudaError_t LaunchDecodeAttention(const AttentionArgs& a, const DecodeAttnPlan& plan,
                                  cudaStream_t stream) {
  if (!ArgsOk(a) || !plan.ok || a.row_slot == nullptr || a.positions == nullptr) {
    return cudaErrorInvalidValue;
  }
  if (a.rows == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(a.rows),
                  static_cast<unsigned>(a.kv_heads * plan.head_chunks),
                  static_cast<unsigned>(a.splits));
  return Dispatch(a.dtype, [&](auto z) {
    using T = decltype(z);
    auto launch = [&](auto kernel) {
      kernel<<<grid, kDecodeWarps * 32, plan.smem, stream>>>(
          a, plan.lanes_per_key, plan.heads_per_block, plan.head_chunks);
      const cudaError_t e = cudaGetLastError();
      return e != cudaSuccess || a.splits == 1 ? e : Combine<T>(a, stream);
    };
    switch (plan.max_heads) {
      case 1:
        return launch(DecodeAttentionKernel<T, 1>);
      case 2:
        return launch(DecodeAttentionKernel<T, 2>);
      case 4:
        return launch(DecodeAttentionKernel<T, 4>);
      case 8:
        return launch(DecodeAttentionKernel<T, 8>);
      default:
        return cudaErrorInvalidValue;
    }
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

}  // namespace cb::cuda
