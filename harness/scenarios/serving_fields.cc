#include "harness/scenarios/serving_fields.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "harness/core/limits.h"
#include "harness/scenarios/distributions.h"

namespace cb {

int64_t EffectiveMaxPrefillTokens(const WorkloadSpec& w) {
  return w.serving.max_prefill_tokens > 0 ? w.serving.max_prefill_tokens : 512;
}

using nlohmann::json;

bool IsArrayValuedField(const std::string& key) { return key == "batches" || key == "rates"; }

Status ReadServingFields(const json& obj, const FieldReader& f, ServingSpec* s) {
  CB_RETURN_IF_ERROR(f.Double("rate", false, &s->rate));
  CB_RETURN_IF_ERROR(f.Int("concurrency", false, &s->concurrency));
  CB_RETURN_IF_ERROR(f.String("arrival", false, &s->arrival));
  CB_RETURN_IF_ERROR(f.String("prompt_dist", false, &s->prompt_dist));
  CB_RETURN_IF_ERROR(f.String("output_dist", false, &s->output_dist));
  CB_RETURN_IF_ERROR(f.Int("requests", false, &s->requests));
  CB_RETURN_IF_ERROR(f.Int("warmup_requests", false, &s->warmup_requests));
  CB_RETURN_IF_ERROR(f.Int("max_prefill_tokens", false, &s->max_prefill_tokens));
  CB_RETURN_IF_ERROR(f.Int("kv_page_tokens", false, &s->kv_page_tokens));
  CB_RETURN_IF_ERROR(f.Int("kv_pages", false, &s->kv_pages));
  CB_RETURN_IF_ERROR(f.Double("slo_ttft", false, &s->slo_ttft));
  CB_RETURN_IF_ERROR(f.Double("slo_tpot", false, &s->slo_tpot));
  CB_RETURN_IF_ERROR(f.Double("min_duration", false, &s->min_duration));
  CB_RETURN_IF_ERROR(f.Int("min_requests", false, &s->min_requests));
  CB_RETURN_IF_ERROR(f.Double("max_cv", false, &s->max_cv));
  CB_RETURN_IF_ERROR(f.Bool("strict", false, &s->strict));
  CB_RETURN_IF_ERROR(f.Bool("ceiling_probes", false, &s->ceiling_probes));
  CB_RETURN_IF_ERROR(f.Double("max_ceiling_drift", false, &s->max_ceiling_drift));
  if (obj.contains("max_ceiling_drift") &&
      !(s->max_ceiling_drift > 0 && s->max_ceiling_drift < 1)) {
    return f.Error("max_ceiling_drift",
                   "expected a share between 0 and 1 (e.g. 0.15: probes 15% apart), got " +
                       obj["max_ceiling_drift"].dump());
  }
  CB_RETURN_IF_ERROR(f.String("sweep_scenario", false, &s->sweep_scenario));
  CB_RETURN_IF_ERROR(f.Double("at_interactivity", false, &s->at_interactivity));
  for (const char* key : {"batches", "rates"}) {
    if (!obj.contains(key)) continue;
    const json& v = obj[key];
    const json list = v.is_array() ? v : json::array({v});
    if (list.empty()) return f.Error(key, "expected a non-empty list");
    for (const json& x : list) {
      if (std::string(key) == "batches") {
        if (!x.is_number_integer() || x.get<int64_t>() < 1) {
          return f.Error(key, "expected positive integers, got " + x.dump());
        }
        s->sweep_batches.push_back(x.get<int64_t>());
      } else {
        if (!x.is_number() || !(x.get<double>() > 0)) {
          return f.Error(key, "expected numbers above 0 (requests/s), got " + x.dump());
        }
        s->sweep_rates.push_back(x.get<double>());
      }
    }
  }
  return Status::Ok();
}

Status ValidateScenario(const WorkloadSpec& w, const std::string& where) {
  auto bad = [&](const char* field, const std::string& what) {
    return Status::InvalidInput(where + ": field '" + field + "': " + what);
  };
  const ServingSpec& s = w.serving;
  const std::string& sc = w.scenario;
  if (sc != "offline" && sc != "single-stream" && sc != "server" && sc != "sweep") {
    return bad("scenario", "unknown scenario '" + sc +
                               "'; allowed values: offline, single-stream, server, sweep");
  }
  if (s.rate < 0 || !std::isfinite(s.rate)) return bad("rate", "must be above 0 (requests/s)");
  if (s.rate > 0 && s.rate < kMinRate) {
    // An open loop this slow would wait hours between arrivals.
    char what[128];
    std::snprintf(what, sizeof what,
                  "%g requests/s is below the bound %g (one request every 1,000 s)", s.rate,
                  kMinRate);
    return bad("rate", what);
  }
  if (s.concurrency < 0 || s.concurrency > limits::kMaxBatch) {
    return bad("concurrency", "must be between 0 and " + std::to_string(limits::kMaxBatch));
  }
  if (s.requests < 0 || s.requests > limits::kMaxRequests) {
    return bad("requests",
               "must be between 0 (= --min-requests) and " + std::to_string(limits::kMaxRequests));
  }
  if (s.warmup_requests < 0 || s.warmup_requests > limits::kMaxRequests) {
    return bad("warmup_requests", "must be between 0 and " + std::to_string(limits::kMaxRequests));
  }
  if (s.min_requests > limits::kMaxRequests) {
    return bad("min_requests", "must be at most " + std::to_string(limits::kMaxRequests));
  }
  if (s.max_prefill_tokens > limits::kMaxContext || s.kv_page_tokens > limits::kMaxContext ||
      s.kv_pages > limits::kMaxContext) {
    return bad("max_prefill_tokens",
               "max_prefill_tokens, kv_page_tokens and kv_pages must be at most " +
                   std::to_string(limits::kMaxContext));
  }
  if (!(s.min_duration <= 86400 * 7.0))
    return bad("min_duration", "must be at most a week (604800 s)");
  for (double r : s.sweep_rates) {
    if (!(r >= kMinRate) || !std::isfinite(r)) {
      return bad("rates", "every rate must be at least 0.001 requests/s");
    }
  }
  for (int64_t b : s.sweep_batches) {
    if (b < 1 || b > limits::kMaxBatch) {
      return bad("batches",
                 "every batch must be between 1 and " + std::to_string(limits::kMaxBatch));
    }
  }
  if (s.max_prefill_tokens < 0) {
    return bad("max_prefill_tokens", "must be at least 1 (0: the default)");
  }
  if (s.kv_page_tokens < 1) return bad("kv_page_tokens", "must be at least 1");
  if (s.kv_pages < 0) return bad("kv_pages", "must not be negative (0 = from memory)");
  if (s.slo_ttft < 0) return bad("slo_ttft", "must not be negative (seconds; 0 = none)");
  if (s.slo_tpot < 0) return bad("slo_tpot", "must not be negative (seconds; 0 = none)");
  if (s.at_interactivity < 0) return bad("at_interactivity", "must not be negative");
  LengthDist prompt = LengthDist::Fixed(w.prompt_len), output = LengthDist::Fixed(w.gen_len);
  if (!s.prompt_dist.empty()) {
    CB_RETURN_IF_ERROR(LengthDist::Parse(s.prompt_dist, where + ": field 'prompt_dist'", &prompt));
  }
  if (!s.output_dist.empty()) {
    CB_RETURN_IF_ERROR(LengthDist::Parse(s.output_dist, where + ": field 'output_dist'", &output));
  }
  if (w.model.max_context > 0 && prompt.Max() + output.Max() > w.model.max_context) {
    return bad("prompt_dist",
               "longest prompt + output = " + std::to_string(prompt.Max() + output.Max()) +
                   " tokens exceeds the context of " + w.model.name + " (" +
                   std::to_string(w.model.max_context) + ")");
  }
  if (s.arrival != "poisson" && s.arrival.rfind("gamma:", 0) != 0) {
    return bad("arrival",
               "unknown arrival process '" + s.arrival + "'; allowed: poisson, gamma:CV");
  }
  if (s.arrival != "poisson" && s.rate > 0) {
    double cv = std::atof(s.arrival.c_str() + 6);
    if (!(cv > 0 && cv <= 10)) return bad("arrival", "gamma:CV needs 0 < CV <= 10");
  }
  if (sc == "single-stream" || sc == "server") {
    if (w.Extrapolated()) {
      return bad("layers", sc + " runs every layer of the model (its clock is the device's); "
                                "--layers applies to offline runs");
    }
  }
  if (sc == "server" && (s.rate > 0) == (s.concurrency > 0)) {
    return bad("rate",
               "the server scenario needs exactly one of rate (requests/s, Poisson or "
               "gamma arrivals) and concurrency (requests in flight)");
  }
  if (sc == "sweep") {
    if (s.sweep_batches.empty() == s.sweep_rates.empty()) {
      return bad("batches",
                 "a sweep needs exactly one of batches (e.g. [1,2,4,8]) and rates "
                 "(requests/s, e.g. [1,2,4])");
    }
    std::string point = s.sweep_scenario;
    if (point.empty()) point = s.sweep_batches.empty() ? "server" : "offline";
    if (point != "offline" && point != "server") {
      return bad("sweep_scenario", "unknown '" + point + "'; allowed values: offline, server");
    }
    if (!s.sweep_rates.empty() && point != "server") {
      return bad("sweep_scenario", "a sweep over rates runs the server scenario");
    }
    if (point == "server" && !s.sweep_batches.empty() && s.rate <= 0 && s.concurrency <= 0) {
      return bad("rate", "a server sweep over batches needs rate or concurrency");
    }
  } else if (!s.sweep_batches.empty() || !s.sweep_rates.empty()) {
    return bad(s.sweep_batches.empty() ? "rates" : "batches",
               "only the sweep scenario takes a list of points");
  }
  return Status::Ok();
}

void ExpandSweep(const WorkloadSpec& w, const std::string& group, std::vector<WorkloadSpec>* out) {
  if (w.scenario != "sweep") {
    out->push_back(w);
    return;
  }
  const ServingSpec& s = w.serving;
  std::string point = s.sweep_scenario;
  if (point.empty()) point = s.sweep_batches.empty() ? "server" : "offline";
  auto make = [&](const char* axis, double value) {
    WorkloadSpec p = w;
    p.scenario = point;
    p.serving.sweep_group = group;
    p.serving.sweep_axis = axis;
    p.serving.sweep_value = value;
    p.serving.sweep_batches.clear();
    p.serving.sweep_rates.clear();
    return p;
  };
  for (int64_t b : s.sweep_batches) {
    WorkloadSpec p = make("batch", static_cast<double>(b));
    p.batch = b;
    if (point == "server" && p.serving.concurrency > 0) p.serving.concurrency = b;
    out->push_back(std::move(p));
  }
  for (double r : s.sweep_rates) {
    WorkloadSpec p = make("rate", r);
    p.serving.rate = r;
    p.serving.concurrency = 0;
    out->push_back(std::move(p));
  }
}

}  // namespace cb
