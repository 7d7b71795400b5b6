#pragma once

#include <cstdint>
#include <random>
#include <string>

#include "harness/core/status.h"

namespace cb {

/// Prompt or output lengths of the serving scenarios: "fixed:N", "uniform:A-B" (inclusive) or
/// "lognormal:MEAN,SIGMA" (MEAN is the mean of the lengths, SIGMA the log-space spread; samples
/// are rounded and clipped to [1, Max()], Max() being the 99.9th percentile).
class LengthDist {
 public:
  /// `flag` names the flag or suite field in errors.
  static Status Parse(const std::string& text, const std::string& flag, LengthDist* out);
  static LengthDist Fixed(int64_t n);
  int64_t Sample(std::mt19937_64& rng) const;
  int64_t Max() const { return max_; }
  double Mean() const;
  const std::string& text() const { return text_; }

 private:
  enum class Kind { kFixed, kUniform, kLognormal } kind_ = Kind::kFixed;
  int64_t lo_ = 1, max_ = 1;
  double mu_ = 0, sigma_ = 0, mean_ = 1;
  std::string text_;
};

/// Inter-arrival times of the server scenario at `rate` requests/s: exponential ("poisson") or
/// gamma with coefficient of variation CV ("gamma:CV"; CV 1 is Poisson, above 1 bursty).
class ArrivalProcess {
 public:
  static Status Parse(const std::string& text, double rate, const std::string& flag,
                      ArrivalProcess* out);
  double NextGap(std::mt19937_64& rng);
  double cv() const { return cv_; }

 private:
  double rate_ = 1, cv_ = 1;
  std::gamma_distribution<double> gamma_{1.0, 1.0};
};

}  // namespace cb
