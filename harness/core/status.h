#pragma once

#include <string>
#include <utility>

namespace cb {

/// Outcome of an operation that can fail. Codes map onto the CLI's exit codes:
/// kInvalidInput -> 2 (bad usage, config, unknown name), kCancelled -> 130, the rest -> 1.
enum class StatusCode {
  kOk = 0,
  kInvalidInput,       ///< bad flag, file, field or name; the user must fix the input
  kResourceExhausted,  ///< the workload does not fit (memory); also bad input: exit 2
  kUnsupported,        ///< the backend cannot run this workload: reported SKIPPED
  kInternal,           ///< a fault while running
  kCancelled,          ///< interrupted (Ctrl-C)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidInput(std::string m) { return {StatusCode::kInvalidInput, std::move(m)}; }
  static Status Exhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
  static Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  /// Exit code of the CLI for this status (0, 1, 2 or 130).
  int ExitCode() const {
    switch (code_) {
      case StatusCode::kOk:
        return 0;
      case StatusCode::kInvalidInput:
      case StatusCode::kResourceExhausted:
        return 2;
      case StatusCode::kCancelled:
        return 130;
      default:
        return 1;
    }
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

#define CB_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::cb::Status cb_status_ = (expr);        \
    if (!cb_status_.ok()) return cb_status_; \
  } while (0)

}  // namespace cb
