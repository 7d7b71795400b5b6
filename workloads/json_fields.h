#pragma once

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "harness/core/status.h"

namespace cb {

/// Parses JSON text; a syntax error names `origin` with line and column.
Status ParseJsonText(const std::string& text, const std::string& origin, nlohmann::json* out);

/// Reads typed fields of a JSON document; every error names the origin and the dotted field
/// path, e.g. "results/run-1.json: field 'workload.batch': expected integer, got 2.5". A missing
/// field is an error here; FieldReader reads optional fields of config files over it.
class JsonReader {
 public:
  using json = nlohmann::json;
  explicit JsonReader(std::string origin) : origin_(std::move(origin)) {}

  Status Error(const std::string& path, const std::string& what) const {
    return Status::InvalidInput(origin_ + ": field '" + path + "': " + what);
  }

  static std::string Join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }
  static std::string Index(const std::string& path, size_t i) {
    return path + "[" + std::to_string(i) + "]";
  }

  /// The member `key` of object `obj` (at `path`); an error when missing.
  Status Get(const json& obj, const std::string& path, const char* key, const json** out) const {
    auto it = obj.find(key);
    if (it == obj.end()) return Error(Join(path, key), "missing");
    *out = &*it;
    return Status::Ok();
  }

  Status Expected(const std::string& path, const char* what, const json& v) const {
    return Error(path, std::string("expected ") + what + ", got " + v.type_name());
  }

  Status Object(const json& obj, const std::string& path, const char* key, const json** out) const {
    CB_RETURN_IF_ERROR(Get(obj, path, key, out));
    if (!(*out)->is_object()) return Expected(Join(path, key), "object", **out);
    return Status::Ok();
  }

  Status Array(const json& obj, const std::string& path, const char* key, const json** out) const {
    CB_RETURN_IF_ERROR(Get(obj, path, key, out));
    if (!(*out)->is_array()) return Expected(Join(path, key), "array", **out);
    return Status::Ok();
  }

  Status String(const json& obj, const std::string& path, const char* key, std::string* out) const {
    const json* v;
    CB_RETURN_IF_ERROR(Get(obj, path, key, &v));
    if (!v->is_string()) return Expected(Join(path, key), "string", *v);
    *out = v->get<std::string>();
    return Status::Ok();
  }

  /// A string that must be one of `allowed`.
  Status Enum(const json& obj, const std::string& path, const char* key,
              std::initializer_list<const char*> allowed, std::string* out) const {
    std::string s;
    CB_RETURN_IF_ERROR(String(obj, path, key, &s));
    std::string list;
    for (const char* a : allowed) {
      if (s == a) {
        *out = s;
        return Status::Ok();
      }
      list += (list.empty() ? "" : ", ") + std::string(a);
    }
    return Error(Join(path, key), "unknown value '" + s + "'; allowed values: " + list);
  }

  Status Bool(const json& obj, const std::string& path, const char* key, bool* out) const {
    const json* v;
    CB_RETURN_IF_ERROR(Get(obj, path, key, &v));
    if (!v->is_boolean()) return Expected(Join(path, key), "boolean", *v);
    *out = v->get<bool>();
    return Status::Ok();
  }

  /// A number, or null for a value that was not finite (read back as NaN).
  Status NumberValue(const json& v, const std::string& path, double* out) const {
    if (v.is_null()) {
      *out = std::numeric_limits<double>::quiet_NaN();
      return Status::Ok();
    }
    if (!v.is_number()) return Expected(path, "number", v);
    *out = v.get<double>();
    return Status::Ok();
  }

  Status Number(const json& obj, const std::string& path, const char* key, double* out) const {
    const json* v;
    CB_RETURN_IF_ERROR(Get(obj, path, key, &v));
    return NumberValue(*v, Join(path, key), out);
  }

  /// An integer in [lo, hi]; an integral floating-point value such as 4.0 is accepted too.
  template <typename T>
  Status IntegerValue(const json& v, const std::string& path, T* out,
                      T lo = std::numeric_limits<T>::min(),
                      T hi = std::numeric_limits<T>::max()) const {
    auto fits = [&](auto x) { return std::cmp_greater_equal(x, lo) && std::cmp_less_equal(x, hi); };
    auto out_of_range = [&]() {
      // The bound of a 64-bit field is no useful advice; that of a narrower one is.
      const bool any_max = sizeof(T) == 8 && std::cmp_equal(hi, std::numeric_limits<T>::max());
      std::string want =
          lo == 0 && any_max ? "a non-negative integer"
          : lo == 0          ? "an integer in [0, " + std::to_string(hi) + "]"
                    : "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
      return Error(path, "expected " + want + ", got " + v.dump());
    };
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (!fits(u)) return out_of_range();
      *out = static_cast<T>(u);
      return Status::Ok();
    }
    if (v.is_number_integer()) {
      const int64_t i = v.get<int64_t>();
      if (!fits(i)) return out_of_range();
      *out = static_cast<T>(i);
      return Status::Ok();
    }
    if (v.is_number_float()) {
      const double d = v.get<double>();
      constexpr double kExact = 9007199254740992.0;  // 2^53: beyond it a double is no count
      if (std::nearbyint(d) != d || !(std::fabs(d) < kExact)) {
        return Error(path, "expected integer, got " + v.dump());
      }
      const int64_t i = static_cast<int64_t>(d);
      if (!fits(i)) return out_of_range();
      *out = static_cast<T>(i);
      return Status::Ok();
    }
    return Expected(path, "integer", v);
  }

  template <typename T>
  Status Integer(const json& obj, const std::string& path, const char* key, T* out,
                 T lo = std::numeric_limits<T>::min(), T hi = std::numeric_limits<T>::max()) const {
    const json* v;
    CB_RETURN_IF_ERROR(Get(obj, path, key, &v));
    return IntegerValue(*v, Join(path, key), out, lo, hi);
  }

 private:
  std::string origin_;
};

/// Typed field readers for config files. Each error names origin and field, e.g.
/// "workloads/models/x.json: field 'num_heads': expected a positive integer, got -4".
class FieldReader {
 public:
  FieldReader(const nlohmann::json& obj, std::string origin)
      : obj_(obj), reader_(std::move(origin)) {}

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
  JsonReader reader_;
};

}  // namespace cb
