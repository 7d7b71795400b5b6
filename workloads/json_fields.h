#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "harness/core/status.h"

namespace cb {

/// Parses JSON text; a syntax error names `origin` with line and column.
Status ParseJsonText(const std::string& text, const std::string& origin, nlohmann::json* out);

/// Typed field readers for config files. Each error names origin and field, e.g.
/// "workloads/models/x.json: field 'num_heads': expected a positive integer, got -4".
class FieldReader {
 public:
  FieldReader(const nlohmann::json& obj, std::string origin, std::string prefix = "")
      : obj_(obj), origin_(std::move(origin)), prefix_(std::move(prefix)) {}

  bool Has(const char* field) const { return obj_.contains(field); }
  Status Int(const char* field, bool required, int64_t* out) const;
  Status Double(const char* field, bool required, double* out) const;
  Status Bool(const char* field, bool required, bool* out) const;
  Status String(const char* field, bool required, std::string* out) const;
  /// Rejects fields not in `allowed` (a typo must not be silently ignored).
  Status OnlyKnown(std::initializer_list<const char*> allowed) const;
  Status Error(const char* field, const std::string& what) const;

 private:
  const nlohmann::json& obj_;
  std::string origin_;
  std::string prefix_;
};

}  // namespace cb
