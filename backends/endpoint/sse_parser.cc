#include "backends/endpoint/sse_parser.h"

namespace cb {

bool SseParser::Feed(std::string_view bytes, std::vector<SseEvent>* out) {
  if (failed()) return false;
  size_t start = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (c != '\r' && c != '\n') continue;
    if (c == '\n' && last_cr_ && i == start && line_.empty()) {
      // The LF of a CRLF whose CR ended the previous line (possibly in an earlier Feed).
      last_cr_ = false;
      start = i + 1;
      continue;
    }
    if (line_.empty()) {
      Line(bytes.substr(start, i - start), out);
    } else {
      line_.append(bytes.substr(start, i - start));
      Line(line_, out);
      line_.clear();
    }
    last_cr_ = c == '\r';
    start = i + 1;
  }
  if (start < bytes.size()) {
    last_cr_ = false;
    line_.append(bytes.substr(start));
    if (line_.size() > max_line_) {
      error_ = "an event-stream line longer than " + std::to_string(max_line_) + " bytes";
      return false;
    }
  }
  return true;
}

void SseParser::Line(std::string_view line, std::vector<SseEvent>* out) {
  if (line.empty()) {  // dispatch
    if (has_data_) {
      if (!data_.empty() && data_.back() == '\n') data_.pop_back();
      event_.data = std::move(data_);
      out->push_back(std::move(event_));
    }
    event_ = SseEvent{};
    data_.clear();
    has_data_ = has_fields_ = false;
    return;
  }
  if (line.front() == ':') {
    ++comments_;
    return;
  }
  const size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  has_fields_ = true;
  if (field == "data") {
    data_.append(value);
    data_.push_back('\n');
    has_data_ = true;
  } else if (field == "event") {
    event_.event = std::string(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) event_.id = std::string(value);
  }
  // "retry" and unknown fields are ignored, as the format says.
}

}  // namespace cb
