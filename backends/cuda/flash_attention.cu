// Causal prefill attention on tensor cores (flash-attention style): a block of 4 warps takes
// 64 query rows of one query head, walks the sequence's keys in tiles of 64 up to its last
// row's position, and keeps the scores in registers: S = Q K^T and O += P V as mma.sync
// m16n8k16 (bf16 or fp16 in, fp32 accumulation), an online softmax in fp32 between them. No
// score matrix is written; key tiles after a warp's rows are skipped. K and V are read from the
// cache (appended before this runs), Q from the QKV buffer (fp32 or the session dtype).
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with .bf16/.f16): lane = 4 * g + t. A (16 x 16, row
// major) registers: {A[g][2t..2t+1]}, {A[g+8][2t..]}, {A[g][2t+8..]}, {A[g+8][2t+8..]}. B (16 x
// 8, column major): {B[2t..2t+1][g]}, {B[2t+8..2t+9][g]}. C/D (16 x 8 fp32): C[g][2t], C[g][2t+1],
// C[g+8][2t], C[g+8][2t+1]. Two adjacent C tiles of S are the A fragment of P for 16 keys.

#include <cmath>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/kernels.h"

namespace cb::cuda {
namespace {

using dev::FromF;
using dev::kFullMask;
using dev::LoadAct;

template <typename T>
struct Mma;
template <>
struct Mma<__nv_bfloat16> {
  static __device__ __forceinline__ void Run(float* d, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
  static __device__ __forceinline__ uint32_t Pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
};
template <>
struct Mma<__half> {
  static __device__ __forceinline__ void Run(float* d, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
  static __device__ __forceinline__ uint32_t Pack(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
};

template <typename T>
__device__ __forceinline__ uint32_t Pair(const T* p) {  // two adjacent elements
  return *reinterpret_cast<const uint32_t*>(p);
}
template <typename T>
__device__ __forceinline__ uint32_t Join(const T* lo, const T* hi) {  // two separate elements
  return static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(lo)) |
         (static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(hi)) << 16);
}

/// The online softmax update of one of the lane's two rows (`hr`: row g or g + 8) over a tile
/// of scores already scaled to log2 units and masked: s becomes P, o and l are rescaled.
template <int NK, int ND>
__device__ __forceinline__ void SoftmaxRow(float (&s)[NK][4], float (&o)[ND][4], float& m, float& l,
                                           int hr) {
  float mx = -INFINITY;
#pragma unroll
  for (int j = 0; j < NK; ++j) mx = fmaxf(mx, fmaxf(s[j][2 * hr], s[j][2 * hr + 1]));
  mx = fmaxf(mx, __shfl_xor_sync(kFullMask, mx, 1));
  mx = fmaxf(mx, __shfl_xor_sync(kFullMask, mx, 2));
  const float m_new = fmaxf(m, mx);
  const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // all masked so far: p = 0
  const float corr = exp2f(m - m_use);
  float sum = 0;
#pragma unroll
  for (int j = 0; j < NK; ++j) {
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const float p = exp2f(s[j][2 * hr + c] - m_use);
      s[j][2 * hr + c] = p;
      sum += p;
    }
  }
  l = l * corr + sum;
#pragma unroll
  for (int nd = 0; nd < ND; ++nd) {
    o[nd][2 * hr] *= corr;
    o[nd][2 * hr + 1] *= corr;
  }
  m = m_new;
}

/// Compile-time sizes of the kernel for head_dim HD.
template <int HD>
struct Flash {
  static constexpr int kLd = HD + 8;    // shared-memory row stride, against bank conflicts
  static constexpr int kVecs = HD / 8;  // 16-byte vectors per K or V row
};

/// The tile's queries into shared memory in the session dtype (rows past the tile as zeros),
/// then this warp's A fragments of its 16 rows.
template <typename T, int HD>
__device__ __forceinline__ void LoadQueries(const AttentionArgs& a, int first_row, int rows,
                                            int head, T* qs, uint32_t (&qf)[HD / 16][4]) {
  constexpr int kLd = Flash<HD>::kLd;
  for (int e = threadIdx.x; e < kFlashRows * HD; e += blockDim.x) {
    const int r = e / HD, d = e % HD;
    float v = 0;
    if (r < rows) {
      v = LoadAct(
          a.qkv,
          static_cast<int64_t>(first_row + r) * a.qkv_width + static_cast<int64_t>(head) * HD + d,
          a.qkv_type);
    }
    qs[r * kLd + d] = FromF<T>(v);
  }
  __syncthreads();
  const int lane = threadIdx.x % 32;
  const int r0 = threadIdx.x / 32 * 16 + lane / 4;
#pragma unroll
  for (int ks_i = 0; ks_i < HD / 16; ++ks_i) {
    const T* q = qs + r0 * kLd + ks_i * 16 + 2 * (lane % 4);
    qf[ks_i][0] = Pair(q);
    qf[ks_i][1] = Pair(q + 8 * kLd);
    qf[ks_i][2] = Pair(q + 8);
    qf[ks_i][3] = Pair(q + 8 * kLd + 8);
  }
}

/// Keys and values [key0, key0 + kFlashKeys) into shared memory, 16 bytes a thread at a time;
/// keys at or past `last` (after the tile's last row) as zeros.
template <typename T, int HD>
__device__ __forceinline__ void LoadKeys(const T* kbase, const T* vbase, int key0, int last, T* ks,
                                         T* vs) {
  constexpr int kLd = Flash<HD>::kLd, kVecs = Flash<HD>::kVecs;
  for (int e = threadIdx.x; e < kFlashKeys * kVecs; e += blockDim.x) {
    const int j = e / kVecs, c = (e % kVecs) * 8;
    uint4 kv = make_uint4(0, 0, 0, 0), vv = kv;
    if (key0 + j < last) {
      kv = *reinterpret_cast<const uint4*>(kbase + static_cast<int64_t>(key0 + j) * HD + c);
      vv = *reinterpret_cast<const uint4*>(vbase + static_cast<int64_t>(key0 + j) * HD + c);
    }
    *reinterpret_cast<uint4*>(ks + j * kLd + c) = kv;
    *reinterpret_cast<uint4*>(vs + j * kLd + c) = vv;
  }
}

/// S = Q K^T of the warp's 16 rows and the tile's keys, scaled to log2 units; keys after a row's
/// position masked (-inf) where the tile reaches past the warp's first row.
template <typename T, int HD>
__device__ __forceinline__ void Scores(const uint32_t (&qf)[HD / 16][4], const T* ks, int key0,
                                       int warp_first, const int (&qpos)[2], float scale_log2,
                                       float (&s)[kFlashKeys / 8][4]) {
  constexpr int kLd = Flash<HD>::kLd;
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
  for (int j = 0; j < kFlashKeys / 8; ++j) {
#pragma unroll
    for (int i = 0; i < 4; ++i) s[j][i] = 0;
#pragma unroll
    for (int ks_i = 0; ks_i < HD / 16; ++ks_i) {
      const T* k = ks + (j * 8 + g) * kLd + ks_i * 16 + 2 * t;
      const uint32_t b[2] = {Pair(k), Pair(k + 8)};
      Mma<T>::Run(s[j], qf[ks_i], b);
    }
  }
  const bool diagonal = key0 + kFlashKeys - 1 > warp_first;
#pragma unroll
  for (int j = 0; j < kFlashKeys / 8; ++j) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int key = key0 + j * 8 + 2 * t + (i & 1);
      s[j][i] = diagonal && key > qpos[i / 2] ? -INFINITY : s[j][i] * scale_log2;
    }
  }
}

/// O += P V, P (the softmaxed scores, rounded to T) as the A fragments of 16 keys at a time.
template <typename T, int HD>
__device__ __forceinline__ void AccumulatePv(const float (&s)[kFlashKeys / 8][4], const T* vs,
                                             float (&o)[HD / 8][4]) {
  constexpr int kLd = Flash<HD>::kLd;
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
  for (int kk = 0; kk < kFlashKeys / 16; ++kk) {
    const uint32_t pa[4] = {Mma<T>::Pack(s[2 * kk][0], s[2 * kk][1]),
                            Mma<T>::Pack(s[2 * kk][2], s[2 * kk][3]),
                            Mma<T>::Pack(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                            Mma<T>::Pack(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
    for (int nd = 0; nd < HD / 8; ++nd) {
      const T* v = vs + (kk * 16 + 2 * t) * kLd + nd * 8 + g;
      const uint32_t b[2] = {Join(v, v + kLd), Join(v + 8 * kLd, v + 9 * kLd)};
      Mma<T>::Run(o[nd], pa, b);
    }
  }
}

/// O / l of the lane's two rows, where they are rows of the tile.
template <typename T, int HD>
__device__ __forceinline__ void StoreRows(const AttentionArgs& a, int first_row, int rows, int head,
                                          const float (&o)[HD / 8][4], const float (&l)[2]) {
  const int lane = threadIdx.x % 32, t = lane % 4;
  const int r0 = threadIdx.x / 32 * 16 + lane / 4;
  const int64_t out_w = static_cast<int64_t>(a.heads) * HD;
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float sum = l[hr];
    sum += __shfl_xor_sync(kFullMask, sum, 1);
    sum += __shfl_xor_sync(kFullMask, sum, 2);
    const int r = r0 + 8 * hr;
    if (r >= rows) continue;
    const float inv = 1.0f / sum;  // the row's own key is always visible: sum > 0
    T* out = static_cast<T*>(a.out) + (first_row + r) * out_w + static_cast<int64_t>(head) * HD;
#pragma unroll
    for (int nd = 0; nd < HD / 8; ++nd) {
      out[nd * 8 + 2 * t] = FromF<T>(o[nd][2 * hr] * inv);
      out[nd * 8 + 2 * t + 1] = FromF<T>(o[nd][2 * hr + 1] * inv);
    }
  }
}

template <typename T, int HD>
__global__ void __launch_bounds__(kFlashWarps * 32) FlashAttentionKernel(AttentionArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);
  T* ks = qs + kFlashRows * Flash<HD>::kLd;
  T* vs = ks + kFlashKeys * Flash<HD>::kLd;
  const int32_t* tile = a.tiles + 4 * blockIdx.x;
  const int first_row = tile[0], rows = tile[1], pos0 = tile[3];
  const int head = blockIdx.y, kvh = head / (a.heads / a.kv_heads);
  uint32_t qf[HD / 16][4];
  LoadQueries<T, HD>(a, first_row, rows, head, qs, qf);

  float o[HD / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const float scale_log2 = a.scale * 1.4426950408889634f;
  const int warp_first = pos0 + static_cast<int>(threadIdx.x / 32) * 16, last = pos0 + rows;
  const int lane_row = static_cast<int>(threadIdx.x % 32) / 4;
  const int qpos[2] = {warp_first + lane_row, warp_first + lane_row + 8};
  const int64_t base =
      static_cast<int64_t>(tile[2]) * a.slot_stride + static_cast<int64_t>(kvh) * a.head_stride;
  for (int key0 = 0; key0 < last; key0 += kFlashKeys) {
    __syncthreads();  // the previous tile is consumed
    LoadKeys<T, HD>(static_cast<const T*>(a.k_cache) + base,
                    static_cast<const T*>(a.v_cache) + base, key0, last, ks, vs);
    __syncthreads();
    if (key0 > warp_first + 15) continue;  // every key after every row of this warp
    float s[kFlashKeys / 8][4];
    Scores<T, HD>(qf, ks, key0, warp_first, qpos, scale_log2, s);
    SoftmaxRow(s, o, m[0], l[0], 0);
    SoftmaxRow(s, o, m[1], l[1], 1);
    AccumulatePv<T, HD>(s, vs, o);
  }
  StoreRows<T, HD>(a, first_row, rows, head, o, l);
#else
  __trap();  // built only for sm_80 and newer (mma.sync m16n8k16 bf16)
#endif
}

template <typename T, int HD>
cudaError_t Launch(const AttentionArgs& a, cudaStream_t stream) {
  const size_t smem = FlashSmemBytes(HD);
  static const cudaError_t attr =
      cudaFuncSetAttribute(FlashAttentionKernel<T, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(smem));
  if (attr != cudaSuccess) return attr;
  const dim3 grid(static_cast<unsigned>(a.num_tiles), static_cast<unsigned>(a.heads));
  FlashAttentionKernel<T, HD><<<grid, kFlashWarps * 32, smem, stream>>>(a);
  return cudaGetLastError();
}

template <typename T>
cudaError_t LaunchFor(const AttentionArgs& a, cudaStream_t stream) {
  switch (a.head_dim) {
    case 16:
      return Launch<T, 16>(a, stream);
    case 32:
      return Launch<T, 32>(a, stream);
    case 64:
      return Launch<T, 64>(a, stream);
    case 128:
      return Launch<T, 128>(a, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t LaunchFlashAttention(const AttentionArgs& a, cudaStream_t stream) {
  if (!FlashEligible(a.head_dim, a.dtype, nullptr) || a.splits != 1) return cudaErrorInvalidValue;
  if (a.num_tiles == 0) return cudaSuccess;
  if (a.dtype == DType::kBF16) return LaunchFor<__nv_bfloat16>(a, stream);
  return LaunchFor<__half>(a, stream);
}

}  // namespace cb::cuda
