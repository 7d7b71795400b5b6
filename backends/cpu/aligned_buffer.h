#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "harness/core/status.h"

namespace cb::cpu {

/// Zeroed, 64-byte aligned host memory. Allocations of 2 MiB and more are 2 MiB aligned and
/// advised for transparent huge pages (fewer TLB misses when weights are streamed).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;

  /// Allocates `bytes` (replacing what the buffer held); kResourceExhausted when it cannot.
  Status Allocate(size_t bytes, const char* what) { return Allocate(bytes, what, true); }
  /// The same without zeroing: for a buffer its writer fills completely (the pages are then
  /// first touched by the threads that fill them).
  Status AllocateUninitialized(size_t bytes, const char* what) {
    return Allocate(bytes, what, false);
  }
  void Reset() {
    ptr_.reset();
    size_ = 0;
  }

  void* data() const { return ptr_.get(); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_.get());
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  Status Allocate(size_t bytes, const char* what, bool zero);
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> ptr_;
  size_t size_ = 0;
};

}  // namespace cb::cpu
