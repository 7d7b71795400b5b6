#include "workloads/json_fields.h"

#include <algorithm>

namespace cb {

Status ParseJsonText(const std::string& text, const std::string& origin, nlohmann::json* out) {
  try {
    *out = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    const size_t byte = std::min<size_t>(e.byte == 0 ? 0 : e.byte - 1, text.size());
    size_t line = 1, column = 1;
    for (size_t i = 0; i < byte; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    std::string what = e.what();
    const auto pos = what.find("syntax error");
    if (pos != std::string::npos) what = what.substr(pos);
    return Status::InvalidInput(origin + ":" + std::to_string(line) + ":" + std::to_string(column) +
                                ": malformed JSON: " + what);
  } catch (const nlohmann::json::exception& e) {
    // e.g. a number out of range (1e400)
    return Status::InvalidInput(origin + ": malformed JSON: " + e.what());
  }
  return Status::Ok();
}

Status FieldReader::Error(const char* field, const std::string& what) const {
  return reader_.Error(field, what);
}

Status FieldReader::Int(const char* field, bool required, int64_t* out) const {
  if (!obj_.contains(field)) return required ? Error(field, "is required") : Status::Ok();
  return reader_.Integer(obj_, "", field, out);
}

Status FieldReader::Double(const char* field, bool required, double* out) const {
  if (!obj_.contains(field)) return required ? Error(field, "is required") : Status::Ok();
  const auto& v = obj_.at(field);
  if (v.is_null()) return reader_.Expected(field, "number", v);
  return reader_.Number(obj_, "", field, out);
}

Status FieldReader::Bool(const char* field, bool required, bool* out) const {
  if (!obj_.contains(field)) return required ? Error(field, "is required") : Status::Ok();
  return reader_.Bool(obj_, "", field, out);
}

Status FieldReader::String(const char* field, bool required, std::string* out) const {
  if (!obj_.contains(field)) return required ? Error(field, "is required") : Status::Ok();
  return reader_.String(obj_, "", field, out);
}

Status FieldReader::OnlyKnown(std::initializer_list<const char*> allowed) const {
  for (const auto& [key, value] : obj_.items()) {
    bool known = false;
    std::string list;
    for (const char* a : allowed) {
      known |= key == a;
      list += list.empty() ? a : std::string(", ") + a;
    }
    if (!known) return Error(key.c_str(), "unknown field; allowed fields are " + list);
  }
  return Status::Ok();
}

}  // namespace cb
