#include "backends/backend.h"

#include <chrono>

namespace cb {

double SteadyClock::NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace cb
