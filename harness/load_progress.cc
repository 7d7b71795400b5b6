#include "harness/load_progress.h"

#include <sys/resource.h>

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

/// This process's CPU time so far, user and kernel, summed over its threads, and its minor
/// page faults.
struct CpuUse {
  double user_s = 0, kernel_s = 0;
  long minor_faults = 0;
};
CpuUse CpuUseNow() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return CpuUse{secs(u.ru_utime), secs(u.ru_stime), u.ru_minflt};
}

}  // namespace

struct LoadProgress::State {
  std::string prefix;
  bool quiet = false;
  double start = 0, last = 0;
  CpuUse cpu_start;
};

LoadProgress::LoadProgress(std::string prefix, bool quiet) : state_(std::make_shared<State>()) {
  state_->prefix = std::move(prefix);
  state_->quiet = quiet;
  state_->start = state_->last = Now();
  state_->cpu_start = CpuUseNow();
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
  const CpuUse now = CpuUseNow();
  const double user = now.user_s - state_->cpu_start.user_s;
  const double kernel = now.kernel_s - state_->cpu_start.kernel_s;
  std::fprintf(stderr, "%s   loaded %.2f GB in %.1f s (%.2f GB/s)\n", state_->prefix.c_str(),
               bytes / 1e9, elapsed, bytes / 1e9 / elapsed);
  // The split says whether the generator or the kernel's first touch of fresh pages (zeroing
  // them, and in a VM the host backing them) held the load back.
  std::fprintf(stderr,
               "%s   load CPU time: generating %.1f s (%.2f GB/s per core-second), kernel %.1f s "
               "(%ld page faults: fresh memory touched for the first time)\n",
               state_->prefix.c_str(), user, user > 0 ? bytes / 1e9 / user : 0.0, kernel,
               now.minor_faults - state_->cpu_start.minor_faults);
}

}  // namespace cb
