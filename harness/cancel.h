#pragma once

namespace cb {

/// Installs SIGINT/SIGTERM handlers that only set a flag; long work polls it between steps.
void InstallCancelHandlers();
bool CancelRequested();
/// For tests and for a second Ctrl-C: set or clear the flag directly.
void SetCancelRequested(bool value);

}  // namespace cb
