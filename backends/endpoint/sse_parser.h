#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace cb {

/// One server-sent event (the WHATWG "event stream" format).
struct SseEvent {
  std::string event;  ///< the `event:` field; empty means "message"
  std::string data;   ///< `data:` lines joined with '\n'
  std::string id;
};

/// Incremental parser of a text/event-stream body. Bytes may be split anywhere (inside a
/// line, between CR and LF); lines end with CRLF, LF or CR; `field: value` loses one space
/// after the colon; several `data:` lines of one event are joined with '\n'; a blank line
/// dispatches the event (an event without data is dropped, as browsers do); lines starting
/// with ':' are comments (keep-alives). A line longer than `max_line` bytes is an error: the
/// parser stops and says so.
class SseParser {
 public:
  explicit SseParser(size_t max_line = 1 << 20) : max_line_(max_line) {}

  /// Parses `bytes`, appending every event completed by them to `out`. False after an error.
  bool Feed(std::string_view bytes, std::vector<SseEvent>* out);

  /// True when bytes of an unfinished line or event are buffered (a stream that ends here
  /// was cut short).
  bool Pending() const { return !line_.empty() || has_fields_; }
  size_t comments() const { return comments_; }
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  void Line(std::string_view line, std::vector<SseEvent>* out);

  size_t max_line_;
  std::string line_;  ///< the unfinished line
  bool last_cr_ = false;
  SseEvent event_;  ///< the event being built
  std::string data_;
  bool has_data_ = false, has_fields_ = false;
  size_t comments_ = 0;
  std::string error_;
};

}  // namespace cb
