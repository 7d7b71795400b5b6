#pragma once

#include <cstddef>

namespace cb {

/// A 2 MiB-aligned float buffer (transparent huge pages requested), first touched in
/// parallel with the same static partition the kernels below use, so its pages are real
/// and spread over the threads that read them.
class BandwidthBuffer {
 public:
  explicit BandwidthBuffer(size_t floats, float value = 1.0f);
  ~BandwidthBuffer();
  BandwidthBuffer(const BandwidthBuffer&) = delete;
  BandwidthBuffer& operator=(const BandwidthBuffer&) = delete;

  bool ok() const { return data_ != nullptr; }
  float* data() { return data_; }
  const float* data() const { return data_; }
  size_t size() const { return floats_; }
  size_t bytes() const { return floats_ * sizeof(float); }

 private:
  float* data_ = nullptr;
  size_t floats_ = 0;
};

/// Sum of p[0..n): a streaming read over all OpenMP threads, with AVX-512 where the CPU has
/// it (AVX2/scalar otherwise). The sum is what makes the reads observable.
double StreamReadSum(const float* p, size_t n);

/// dst[i] = src[i] over all OpenMP threads; AVX-512 non-temporal stores where possible so
/// the copy moves 2*n*4 bytes (no read-for-ownership of dst).
void StreamCopy(float* dst, const float* src, size_t n);

/// True when the AVX-512 paths are in use on this CPU.
bool MemoryKernelsUseAvx512();

}  // namespace cb
