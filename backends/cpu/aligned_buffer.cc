#include "backends/cpu/aligned_buffer.h"

#include <sys/mman.h>

#include <cstring>
#include <string>

namespace cb::cpu {

Status AlignedBuffer::Allocate(size_t bytes, const char* what, bool zero) {
  Reset();
  if (bytes == 0) return Status::Ok();
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t align = bytes >= kHuge ? kHuge : 64;
  const size_t rounded = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  if (p == nullptr) {
    return Status::Exhausted("cannot allocate " + std::to_string(bytes) + " bytes for " + what);
  }
  if (align == kHuge) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: ignore failures
  if (zero) std::memset(p, 0, rounded);
  ptr_.reset(p);
  size_ = bytes;
  return Status::Ok();
}

}  // namespace cb::cpu
