#include "harness/load_progress.h"

#include <chrono>
#include <cstdio>

namespace cb {
namespace {

/// Loads shorter than this print nothing beyond the runner's "loading" line.
constexpr double kQuietSeconds = 3.0;
constexpr double kEverySeconds = 2.0;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

struct LoadProgress::State {
  std::string prefix;
  bool quiet = false;
  double start = 0, last = 0;
};

LoadProgress::LoadProgress(std::string prefix, bool quiet) : state_(std::make_shared<State>()) {
  state_->prefix = std::move(prefix);
  state_->quiet = quiet;
  state_->start = state_->last = Now();
}

std::function<void(uint64_t, uint64_t)> LoadProgress::Callback() {
  std::shared_ptr<State> s = state_;
  return [s](uint64_t done, uint64_t total) {
    const double now = Now(), elapsed = now - s->start;
    if (s->quiet || elapsed < kQuietSeconds || now - s->last < kEverySeconds) return;
    s->last = now;
    std::fprintf(stderr, "%s   loaded %.2f of %.2f GB (%.0f%%, %.2f GB/s)\n", s->prefix.c_str(),
                 done / 1e9, total / 1e9, total > 0 ? 100.0 * done / total : 100.0,
                 done / 1e9 / elapsed);
  };
}

void LoadProgress::Done(uint64_t bytes) {
  const double elapsed = Now() - state_->start;
  if (state_->quiet || elapsed < kQuietSeconds) return;
  std::fprintf(stderr, "%s   loaded %.2f GB in %.1f s (%.2f GB/s)\n", state_->prefix.c_str(),
               bytes / 1e9, elapsed, bytes / 1e9 / elapsed);
}

}  // namespace cb
