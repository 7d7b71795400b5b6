#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace cb {

/// Progress of a session's Load on stderr (SessionConfig::load_progress): once a load has
/// taken a few seconds, a line every two seconds with the bytes made, their share of the
/// estimate and the rate; Done() adds the total and rate of a load that took that long, and
/// how its CPU time split between generating weights (user time) and the kernel (page faults).
class LoadProgress {
 public:
  /// `prefix` starts each line (the runner's progress prefix); quiet: no lines.
  LoadProgress(std::string prefix, bool quiet);
  std::function<void(uint64_t done, uint64_t total)> Callback();
  void Done(uint64_t bytes);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace cb
