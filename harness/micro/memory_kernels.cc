#include "harness/micro/memory_kernels.h"

#include <immintrin.h>
#include <omp.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace cb {
namespace {

constexpr size_t kAlign = 2u << 20;  // 2 MiB: huge-page friendly
constexpr size_t kBlock = 128;       // floats per unrolled step (8 x 64-byte vectors)

/// Static partition of [0, n) over `threads`: a range of whole kBlock blocks per thread;
/// the last thread also takes the tail.
void Partition(size_t n, int tid, int threads, size_t* begin, size_t* end) {
  const size_t blocks = n / kBlock;
  const size_t per = blocks / threads, extra = blocks % threads;
  const size_t b = tid * per + (static_cast<size_t>(tid) < extra ? tid : extra);
  const size_t e = b + per + (static_cast<size_t>(tid) < extra ? 1 : 0);
  *begin = b * kBlock;
  *end = tid == threads - 1 ? n : e * kBlock;
}

__attribute__((target("avx512f"))) double ReadAvx512(const float* p, size_t b, size_t e) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  size_t i = b;
  for (; i + kBlock <= e; i += kBlock) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
    a4 = _mm512_add_ps(a4, _mm512_load_ps(p + i + 64));
    a5 = _mm512_add_ps(a5, _mm512_load_ps(p + i + 80));
    a6 = _mm512_add_ps(a6, _mm512_load_ps(p + i + 96));
    a7 = _mm512_add_ps(a7, _mm512_load_ps(p + i + 112));
  }
  a0 = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
  a4 = _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7));
  alignas(64) float lanes[16];  // not _mm512_reduce_add_ps: GCC 12 warns inside it
  _mm512_store_ps(lanes, _mm512_add_ps(a0, a4));
  double s = 0;
  for (float v : lanes) s += v;
  for (; i < e; ++i) s += p[i];
  return s;
}

__attribute__((target("avx512f"))) void CopyAvx512(float* d, const float* s, size_t b, size_t e) {
  size_t i = b;
  for (; i + kBlock <= e; i += kBlock) {
    for (size_t j = 0; j < kBlock; j += 16) _mm512_stream_ps(d + i + j, _mm512_load_ps(s + i + j));
  }
  for (; i < e; ++i) d[i] = s[i];
  _mm_sfence();
}

double ReadScalar(const float* p, size_t b, size_t e) {
  float acc[16] = {};
  size_t i = b;
  for (; i + 16 <= e; i += 16) {
    for (int j = 0; j < 16; ++j) acc[j] += p[i + j];
  }
  double s = 0;
  for (float a : acc) s += a;
  for (; i < e; ++i) s += p[i];
  return s;
}

bool HasAvx512() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}

/// Kernels use aligned loads; every partition boundary is a multiple of kBlock floats
/// (512 bytes), so 64-byte alignment of the base is enough.
bool Aligned64(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 63u) == 0; }

}  // namespace

bool MemoryKernelsUseAvx512() { return HasAvx512(); }

BandwidthBuffer::BandwidthBuffer(size_t floats, float value) {
  const size_t bytes = (floats * sizeof(float) + kAlign - 1) / kAlign * kAlign;
  if (bytes == 0) return;
  data_ = static_cast<float*>(std::aligned_alloc(kAlign, bytes));
  if (data_ == nullptr) return;
  floats_ = floats;
  madvise(data_, bytes, MADV_HUGEPAGE);  // a hint; fine if THP is off
  float* p = data_;
#pragma omp parallel
  {
    size_t b, e;
    Partition(floats, omp_get_thread_num(), omp_get_num_threads(), &b, &e);
    for (size_t i = b; i < e; ++i) p[i] = value;
  }
}

BandwidthBuffer::~BandwidthBuffer() { std::free(data_); }

double StreamReadSum(const float* p, size_t n) {
  const bool avx512 = HasAvx512() && Aligned64(p);
  double sum = 0;
#pragma omp parallel reduction(+ : sum)
  {
    size_t b, e;
    Partition(n, omp_get_thread_num(), omp_get_num_threads(), &b, &e);
    sum += avx512 ? ReadAvx512(p, b, e) : ReadScalar(p, b, e);
  }
  return sum;
}

void StreamCopy(float* dst, const float* src, size_t n) {
  const bool avx512 = HasAvx512() && Aligned64(dst) && Aligned64(src);
#pragma omp parallel
  {
    size_t b, e;
    Partition(n, omp_get_thread_num(), omp_get_num_threads(), &b, &e);
    if (avx512) {
      CopyAvx512(dst, src, b, e);
    } else if (e > b) {
      std::memcpy(dst + b, src + b, (e - b) * sizeof(float));
    }
  }
}

}  // namespace cb
