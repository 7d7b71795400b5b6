#pragma once

#include <cmath>
#include <cstdio>
#include <string>

namespace cb {

/// One number as printf's `format` (a single double conversion, e.g. "%.2f ms") prints it;
/// "-" for a value that is not finite.
inline std::string Fmt(double v, const char* format = "%.4g") {
  if (!std::isfinite(v)) return "-";
  char buf[96];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

}  // namespace cb
