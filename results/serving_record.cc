#include "results/serving_record.h"

#include <cmath>
#include <limits>

#include "results/json_number.h"

namespace cb {
namespace {

using nlohmann::json;

template <typename Fn>
Status Guard(const std::string& origin, const char* section, Fn fn) {
  try {
    fn();
  } catch (const json::exception& e) {
    return Status::InvalidInput(origin + ": field '" + section + "': " + e.what());
  }
  return Status::Ok();
}

}  // namespace

json ServingRecordToJson(const ServingRecord& s) {
  json reqs = json::array();
  for (const RequestSample& r : s.requests) {
    reqs.push_back({{"arrival_s", FiniteOrNull(r.arrival_s)},
                    {"admitted_s", FiniteOrNull(r.admitted_s)},
                    {"first_token_s", FiniteOrNull(r.first_token_s)},
                    {"finish_s", FiniteOrNull(r.finish_s)},
                    {"prompt_len", r.prompt_len},
                    {"output_len", r.output_len}});
  }
  return {{"load", s.load},
          {"target_rate", FiniteOrNull(s.target_rate)},
          {"concurrency", s.concurrency},
          {"prompt_dist", s.prompt_dist},
          {"output_dist", s.output_dist},
          {"max_batch", s.max_batch},
          {"max_prefill_tokens", s.max_prefill_tokens},
          {"kv_page_tokens", s.kv_page_tokens},
          {"kv_pages", s.kv_pages},
          {"kv_pages_peak", s.kv_pages_peak},
          {"kv_note", s.kv_note},
          {"warmup_requests", s.warmup_requests},
          {"steps", s.steps},
          {"max_step_prefill_tokens", s.max_step_prefill_tokens},
          {"mean_running_batch", FiniteOrNull(s.mean_running_batch)},
          {"duration_s", FiniteOrNull(s.duration_s)},
          {"slo_ttft_s", FiniteOrNull(s.slo_ttft_s)},
          {"slo_tpot_s", FiniteOrNull(s.slo_tpot_s)},
          {"replicas", s.replicas},
          {"requests", std::move(reqs)}};
}

json ValidityRecordToJson(const ValidityRecord& v) {
  json bounds = json::array();
  for (const PercentileBound& b : v.percentile_bounds) {
    bounds.push_back({{"metric", b.metric},
                      {"percentile", b.percentile},
                      {"samples", b.samples},
                      {"min_samples", b.min_samples},
                      {"bounded", b.bounded},
                      {"upper_bound", b.bounded ? FiniteOrNull(b.upper_bound) : json(nullptr)}});
  }
  return {{"label", v.label},
          {"shortened", v.shortened},
          {"unstable", v.unstable},
          {"strict", v.strict},
          {"reasons", v.reasons},
          {"min_duration_s", FiniteOrNull(v.min_duration_s)},
          {"duration_s", FiniteOrNull(v.duration_s)},
          {"min_requests", v.min_requests},
          {"requests", v.requests},
          {"max_cv", FiniteOrNull(v.max_cv)},
          {"cv", FiniteOrNull(v.cv)},
          {"cv_of", v.cv_of},
          {"percentile_bounds", std::move(bounds)}};
}

json SweepRecordToJson(const SweepRecord& s) {
  return {{"group", s.group},
          {"axis", s.axis},
          {"value", FiniteOrNull(s.value)},
          {"at_interactivity", FiniteOrNull(s.at_interactivity)}};
}

Status ServingRecordFromJson(const json& j, const std::string& origin, ServingRecord* out) {
  return Guard(origin, "serving", [&] {
    ServingRecord s;
    j.at("load").get_to(s.load);
    s.target_rate = NumberOrNaN(j.at("target_rate"));
    j.at("concurrency").get_to(s.concurrency);
    j.at("prompt_dist").get_to(s.prompt_dist);
    j.at("output_dist").get_to(s.output_dist);
    j.at("max_batch").get_to(s.max_batch);
    j.at("max_prefill_tokens").get_to(s.max_prefill_tokens);
    j.at("kv_page_tokens").get_to(s.kv_page_tokens);
    j.at("kv_pages").get_to(s.kv_pages);
    j.at("kv_pages_peak").get_to(s.kv_pages_peak);
    j.at("kv_note").get_to(s.kv_note);
    j.at("warmup_requests").get_to(s.warmup_requests);
    j.at("steps").get_to(s.steps);
    j.at("max_step_prefill_tokens").get_to(s.max_step_prefill_tokens);
    s.mean_running_batch = NumberOrNaN(j.at("mean_running_batch"));
    s.duration_s = NumberOrNaN(j.at("duration_s"));
    s.slo_ttft_s = NumberOrNaN(j.at("slo_ttft_s"));
    s.slo_tpot_s = NumberOrNaN(j.at("slo_tpot_s"));
    s.replicas = j.value("replicas", int64_t{1});
    for (const json& r : j.at("requests")) {
      RequestSample q;
      q.arrival_s = NumberOrNaN(r.at("arrival_s"));
      q.admitted_s = NumberOrNaN(r.at("admitted_s"));
      q.first_token_s = NumberOrNaN(r.at("first_token_s"));
      q.finish_s = NumberOrNaN(r.at("finish_s"));
      r.at("prompt_len").get_to(q.prompt_len);
      r.at("output_len").get_to(q.output_len);
      s.requests.push_back(q);
    }
    *out = std::move(s);
  });
}

Status ValidityRecordFromJson(const json& j, const std::string& origin, ValidityRecord* out) {
  return Guard(origin, "validity", [&] {
    ValidityRecord v;
    j.at("label").get_to(v.label);
    j.at("shortened").get_to(v.shortened);
    j.at("unstable").get_to(v.unstable);
    j.at("strict").get_to(v.strict);
    j.at("reasons").get_to(v.reasons);
    v.min_duration_s = NumberOrNaN(j.at("min_duration_s"));
    v.duration_s = NumberOrNaN(j.at("duration_s"));
    j.at("min_requests").get_to(v.min_requests);
    j.at("requests").get_to(v.requests);
    v.max_cv = NumberOrNaN(j.at("max_cv"));
    v.cv = NumberOrNaN(j.at("cv"));
    j.at("cv_of").get_to(v.cv_of);
    for (const json& b : j.at("percentile_bounds")) {
      PercentileBound p;
      b.at("metric").get_to(p.metric);
      b.at("percentile").get_to(p.percentile);
      b.at("samples").get_to(p.samples);
      b.at("min_samples").get_to(p.min_samples);
      b.at("bounded").get_to(p.bounded);
      p.upper_bound = NumberOrNaN(b.at("upper_bound"));
      v.percentile_bounds.push_back(p);
    }
    *out = std::move(v);
  });
}

Status SweepRecordFromJson(const json& j, const std::string& origin, SweepRecord* out) {
  return Guard(origin, "sweep", [&] {
    SweepRecord s;
    j.at("group").get_to(s.group);
    j.at("axis").get_to(s.axis);
    s.value = NumberOrNaN(j.at("value"));
    s.at_interactivity = NumberOrNaN(j.at("at_interactivity"));
    *out = s;
  });
}

}  // namespace cb
