#pragma once

#include <cstdint>
#include <vector>

namespace cb {

/// The serving scenarios' KV-cache accounting: a fixed pool of pages of `page_tokens` tokens.
/// A request is admitted only when pages for its whole context (prompt + output) are free;
/// they are returned when it finishes. It governs admission only: the backends keep their
/// slot-based KV storage (one contiguous region per slot), so this is not a paged KV cache in
/// the backend.
class KvPageAllocator {
 public:
  KvPageAllocator(int64_t pages, int64_t page_tokens);
  int64_t PagesFor(int64_t tokens) const { return (tokens + page_tokens_ - 1) / page_tokens_; }
  /// Takes the pages for `tokens`; false (and nothing taken) when not enough are free.
  bool Allocate(int64_t tokens, std::vector<int64_t>* pages);
  void Free(std::vector<int64_t>* pages);
  int64_t total() const { return total_; }
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }
  int64_t page_tokens() const { return page_tokens_; }
  int64_t peak_used() const { return peak_used_; }

 private:
  int64_t total_, page_tokens_, peak_used_ = 0;
  std::vector<int64_t> free_;
};

}  // namespace cb
