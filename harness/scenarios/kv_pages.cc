#include "harness/scenarios/kv_pages.h"

#include <algorithm>

namespace cb {

KvPageAllocator::KvPageAllocator(int64_t pages, int64_t page_tokens)
    : total_(std::max<int64_t>(0, pages)), page_tokens_(std::max<int64_t>(1, page_tokens)) {
  for (int64_t p = total_ - 1; p >= 0; --p) free_.push_back(p);
}

bool KvPageAllocator::Allocate(int64_t tokens, std::vector<int64_t>* pages) {
  const int64_t need = PagesFor(tokens);
  if (need > free_pages()) return false;
  for (int64_t i = 0; i < need; ++i) {
    pages->push_back(free_.back());
    free_.pop_back();
  }
  peak_used_ = std::max(peak_used_, total_ - free_pages());
  return true;
}

void KvPageAllocator::Free(std::vector<int64_t>* pages) {
  free_.insert(free_.end(), pages->begin(), pages->end());
  pages->clear();
}

}  // namespace cb
