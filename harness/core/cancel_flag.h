#pragma once

#include <atomic>

namespace cb {

/// Set by SIGINT/SIGTERM (harness/cancel.h installs the handlers); every long loop and wait
/// polls it, the communicators included, so an interrupted rank stops inside a collective too.
inline std::atomic<bool> g_cancel_requested{false};

/// The text a rank sends the others when it was interrupted: a receiver ends with the
/// interrupted exit code (130), not as a failure.
inline constexpr const char* kInterruptedNotice = "interrupted";

}  // namespace cb
