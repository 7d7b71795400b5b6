#include "harness/cancel.h"

#include <atomic>
#include <csignal>

#include "harness/core/cancel_flag.h"

namespace cb {
namespace {

extern "C" void OnSignal(int) { g_cancel_requested.store(true, std::memory_order_relaxed); }

}  // namespace

void InstallCancelHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool CancelRequested() { return g_cancel_requested.load(std::memory_order_relaxed); }
void SetCancelRequested(bool value) { g_cancel_requested.store(value, std::memory_order_relaxed); }

}  // namespace cb
