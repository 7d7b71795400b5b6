#pragma once

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace cb {

/// A figure as JSON: the number, or null where it is NaN or infinite (JSON has neither).
inline nlohmann::json FiniteOrNull(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

/// The inverse of FiniteOrNull: null reads back as NaN.
inline double NumberOrNaN(const nlohmann::json& j) {
  return j.is_null() ? std::numeric_limits<double>::quiet_NaN() : j.get<double>();
}

}  // namespace cb
