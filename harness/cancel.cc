#include "harness/cancel.h"

#include <atomic>
#include <csignal>

namespace cb {
namespace {

std::atomic<bool> g_cancel{false};

extern "C" void OnSignal(int) { g_cancel.store(true, std::memory_order_relaxed); }

}  // namespace

void InstallCancelHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool CancelRequested() { return g_cancel.load(std::memory_order_relaxed); }
void SetCancelRequested(bool value) { g_cancel.store(value, std::memory_order_relaxed); }

}  // namespace cb
