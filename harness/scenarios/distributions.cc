#include "harness/scenarios/distributions.h"

#include <algorithm>
#include <cmath>

namespace cb {
namespace {

bool ParseInt(const std::string& s, int64_t* out) {
  try {
    size_t used = 0;
    const long long v = std::stoll(s, &used);
    if (used != s.size()) return false;
    *out = v;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

bool ParseDouble(const std::string& s, double* out) {
  try {
    size_t used = 0;
    const double v = std::stod(s, &used);
    if (used != s.size() || !std::isfinite(v)) return false;
    *out = v;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

LengthDist LengthDist::Fixed(int64_t n) {
  LengthDist d;
  d.kind_ = Kind::kFixed;
  d.lo_ = d.max_ = n;
  d.mean_ = static_cast<double>(n);
  d.text_ = "fixed:" + std::to_string(n);
  return d;
}

Status LengthDist::Parse(const std::string& text, const std::string& flag, LengthDist* out) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidInput(flag + ": '" + text + "': " + why +
                                "; allowed: fixed:N, uniform:A-B, lognormal:MEAN,SIGMA");
  };
  const size_t colon = text.find(':');
  if (colon == std::string::npos) return bad("no distribution kind");
  const std::string kind = text.substr(0, colon), args = text.substr(colon + 1);
  LengthDist d;
  d.text_ = text;
  if (kind == "fixed") {
    int64_t n = 0;
    if (!ParseInt(args, &n) || n < 1) return bad("N must be an integer >= 1");
    d = Fixed(n);
  } else if (kind == "uniform") {
    const size_t dash = args.find('-');
    int64_t a = 0, b = 0;
    if (dash == std::string::npos || !ParseInt(args.substr(0, dash), &a) ||
        !ParseInt(args.substr(dash + 1), &b) || a < 1 || b < a) {
      return bad("expected integers 1 <= A <= B");
    }
    d.kind_ = Kind::kUniform;
    d.lo_ = a;
    d.max_ = b;
    d.mean_ = (static_cast<double>(a) + static_cast<double>(b)) / 2.0;
  } else if (kind == "lognormal") {
    const size_t comma = args.find(',');
    double mean = 0, sigma = 0;
    if (comma == std::string::npos || !ParseDouble(args.substr(0, comma), &mean) ||
        !ParseDouble(args.substr(comma + 1), &sigma) || mean < 1 || sigma <= 0 || sigma > 3) {
      return bad("expected MEAN >= 1 and 0 < SIGMA <= 3");
    }
    d.kind_ = Kind::kLognormal;
    d.sigma_ = sigma;
    d.mu_ = std::log(mean) - sigma * sigma / 2.0;
    d.mean_ = mean;
    d.lo_ = 1;
    d.max_ = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::exp(d.mu_ + 3.09 * sigma))));
  } else {
    return bad("unknown kind '" + kind + "'");
  }
  d.text_ = text;
  *out = d;
  return Status::Ok();
}

int64_t LengthDist::Sample(std::mt19937_64& rng) const {
  switch (kind_) {
    case Kind::kFixed:
      return lo_;
    case Kind::kUniform:
      return std::uniform_int_distribution<int64_t>(lo_, max_)(rng);
    case Kind::kLognormal: {
      const double x = std::lognormal_distribution<double>(mu_, sigma_)(rng);
      return std::clamp<int64_t>(std::llround(x), 1, max_);
    }
  }
  return lo_;
}

double LengthDist::Mean() const { return mean_; }

Status ArrivalProcess::Parse(const std::string& text, double rate, const std::string& flag,
                             ArrivalProcess* out) {
  ArrivalProcess a;
  if (!(rate > 0)) return Status::InvalidInput(flag + ": the rate must be above 0");
  a.rate_ = rate;
  if (text.empty() || text == "poisson") {
    a.cv_ = 1;
  } else if (text.rfind("gamma:", 0) == 0) {
    double cv = 0;
    if (!ParseDouble(text.substr(6), &cv) || cv <= 0 || cv > 10) {
      return Status::InvalidInput(flag + ": '" + text +
                                  "': CV must be a number in (0, 10]; allowed: poisson, gamma:CV");
    }
    a.cv_ = cv;
  } else {
    return Status::InvalidInput(flag + ": unknown arrival process '" + text +
                                "'; allowed: poisson, gamma:CV");
  }
  // Gamma with shape k = 1/CV^2 and scale 1/(rate k): mean 1/rate, CV as asked (k = 1 is the
  // exponential of a Poisson process).
  const double k = 1.0 / (a.cv_ * a.cv_);
  a.gamma_ = std::gamma_distribution<double>(k, 1.0 / (rate * k));
  *out = a;
  return Status::Ok();
}

double ArrivalProcess::NextGap(std::mt19937_64& rng) { return gamma_(rng); }

}  // namespace cb
