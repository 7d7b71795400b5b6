#include "results/frontier.h"

#include <algorithm>
#include <cmath>

namespace cb {
namespace {

bool Usable(const FrontierPoint& p) {
  return std::isfinite(p.interactivity) && std::isfinite(p.throughput_per_device) &&
         p.interactivity >= 0 && p.throughput_per_device >= 0;
}

/// Interpolates a figure where 0 means unknown: unknown at either end stays unknown.
double Lerp(double a, double b, double t) {
  if (a == 0 || b == 0) return 0;
  return a + (b - a) * t;
}

}  // namespace

std::vector<FrontierPoint> ParetoFrontier(std::vector<FrontierPoint> points) {
  std::erase_if(points, [](const FrontierPoint& p) { return !Usable(p); });
  // Highest interactivity first; among equal interactivity the highest throughput first. A
  // point is on the frontier when its throughput beats every point seen before it (all of
  // which have higher-or-equal interactivity).
  std::stable_sort(points.begin(), points.end(),
                   [](const FrontierPoint& a, const FrontierPoint& b) {
                     if (a.interactivity != b.interactivity)
                       return a.interactivity > b.interactivity;
                     return a.throughput_per_device > b.throughput_per_device;
                   });
  std::vector<FrontierPoint> frontier;
  double best = -1;
  for (FrontierPoint& p : points) {
    if (p.throughput_per_device > best) {
      best = p.throughput_per_device;
      p.interpolated = false;
      frontier.push_back(std::move(p));
    }
  }
  std::reverse(frontier.begin(), frontier.end());
  return frontier;
}

std::optional<FrontierPoint> InterpolateAt(const std::vector<FrontierPoint>& frontier,
                                           double interactivity) {
  if (frontier.empty() || !std::isfinite(interactivity)) return std::nullopt;
  if (interactivity < frontier.front().interactivity ||
      interactivity > frontier.back().interactivity) {
    return std::nullopt;
  }
  for (size_t i = 0; i < frontier.size(); ++i) {
    if (frontier[i].interactivity == interactivity) {
      FrontierPoint exact = frontier[i];
      exact.interpolated = false;
      return exact;
    }
  }
  for (size_t i = 0; i + 1 < frontier.size(); ++i) {
    const FrontierPoint& lo = frontier[i];
    const FrontierPoint& hi = frontier[i + 1];
    if (interactivity < lo.interactivity || interactivity > hi.interactivity) continue;
    const double t = (interactivity - lo.interactivity) / (hi.interactivity - lo.interactivity);
    FrontierPoint out;
    out.interactivity = interactivity;
    out.throughput_per_device =
        lo.throughput_per_device + (hi.throughput_per_device - lo.throughput_per_device) * t;
    out.usd_per_million_tokens = Lerp(lo.usd_per_million_tokens, hi.usd_per_million_tokens, t);
    out.joules_per_token = Lerp(lo.joules_per_token, hi.joules_per_token, t);
    out.label = "between " + lo.label + " and " + hi.label;
    out.interpolated = true;
    return out;
  }
  return std::nullopt;
}

}  // namespace cb
