#include "harness/endpoint/endpoint_runner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "harness/cancel.h"
#include "harness/core/fmt.h"
#include "harness/cost/energy_cost.h"
#include "harness/endpoint/endpoint_probe.h"
#include "harness/endpoint/endpoint_requests.h"
#include "harness/run_events.h"
#include "harness/scenarios/serving_metrics.h"
#include "harness/scenarios/serving_runner.h"
#include "harness/scenarios/validity.h"
#include "harness/stats.h"

namespace cb {
namespace {

void Invalid(RunRecord* rec, const std::string& why) {
  rec->status = "invalid";
  rec->status_message = why;
}

/// The `endpoint` section before anything is sent.
EndpointRecord Describe(const WorkloadSpec& w, const EndpointTarget& t) {
  const EndpointSpec& e = w.endpoint;
  EndpointRecord r;
  r.url = t.url.Base();
  r.api = ApiName(t.api);
  r.prompts = t.dataset ? "dataset" : "synthetic";
  if (t.dataset) {
    r.dataset_name = t.dataset->name;
    r.dataset_format = t.dataset->format;
    r.dataset_sha256 = t.dataset->sha256;
    r.dataset_entries = static_cast<int64_t>(t.dataset->entries.size());
  }
  r.ignore_eos = e.ignore_eos;
  r.api_key_env = e.api_key_env;
  r.connect_timeout_s = e.connect_timeout;
  r.request_timeout_s = e.request_timeout;
  r.stall_timeout_s = e.stall_timeout;
  r.max_failure_ratio = e.max_failure_ratio;
  r.declared_hardware = t.hardware ? t.hardware->id : "";
  r.declared_devices = t.devices;
  return r;
}

/// Warm-up: every request at once, excluded from every figure. When all fail with HTTP 400 or
/// 422 and ignore_eos was sent, the server may refuse the field: tried once more without it.
Status WarmUp(StreamClient& client, const WorkloadSpec& w, const EndpointTarget& t,
              RequestStyle* style, EndpointRecord* e, std::string* fatal) {
  const int64_t n = w.serving.warmup_requests;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::vector<EndpointRequest> reqs;
    CB_RETURN_IF_ERROR(MakeEndpointRequests(w, t, *style, 1000000, n, &reqs));
    for (EndpointRequest& r : reqs) r.arrival_s = 0;
    EndpointPassConfig cfg;
    cfg.api = t.api;
    cfg.url = t.url.For(ApiRoute(t.api));
    cfg.deadline_s = w.endpoint.request_timeout + w.endpoint.connect_timeout + 1;
    cfg.cancelled = &CancelRequested;
    EndpointPassResult res;
    CB_RETURN_IF_ERROR(RunEndpointPass(client, cfg, &reqs, &res));
    e->warmup_failed = res.failed;
    if (res.failed < n) return Status::Ok();
    const EndpointOutcome& first = res.outcomes.front();
    const bool refused = first.outcome == "http_400" || first.outcome == "http_422";
    if (attempt == 0 && refused && style->ignore_eos) {
      style->ignore_eos = false;
      e->ignore_eos = false;
      e->notes.push_back("the server refused the warm-up requests with ignore_eos/min_tokens (" +
                         first.error + "); sent without them, so outputs may end early");
      continue;
    }
    *fatal = "all " + std::to_string(n) + " warm-up requests failed, e.g. " + first.outcome + ": " +
             first.error;
    e->failures[first.outcome] += n;
    return Status::Ok();
  }
  return Status::Ok();
}

/// The pass's deadline: run_timeout, else the last scheduled arrival (closed loop: the
/// requests in sequence) plus a request timeout and some slack.
double DeadlineOf(const WorkloadSpec& w, const std::vector<EndpointRequest>& reqs,
                  int64_t concurrency) {
  const EndpointSpec& e = w.endpoint;
  if (e.run_timeout > 0) return e.run_timeout;
  const double per = e.connect_timeout + e.request_timeout;
  if (concurrency > 0) {
    const double rounds =
        std::ceil(static_cast<double>(reqs.size()) / static_cast<double>(concurrency));
    return rounds * per + 10;
  }
  return (reqs.empty() ? 0 : reqs.back().arrival_s) + per + 10;
}

/// Records every request and turns the completed ones into the serving section's samples.
void RecordRequests(const std::vector<EndpointRequest>& reqs, const EndpointPassResult& res,
                    ServingRecord* s, EndpointRecord* e, std::vector<double>* itl) {
  bool all_usage = true;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const EndpointOutcome& o = res.outcomes[i];
    const StreamOutcome& st = o.stream;
    EndpointRequestRecord r;
    r.requested_prompt_len = reqs[i].prompt_len;
    r.requested_output_len = reqs[i].output_len;
    r.prompt_tokens = st.usage_prompt_tokens;
    r.completion_tokens = st.usage_completion_tokens;
    r.stream_chunks = st.stream_tokens;
    r.finish_reason = st.finish_reason;
    r.outcome = o.outcome;
    r.error = o.error.size() > 300 ? o.error.substr(0, 300) + "..." : o.error;
    if (o.outcome != "not_sent") ++e->requests_issued;
    if (o.outcome != "ok") {
      if (o.outcome == "not_sent") {
        ++e->requests_not_sent;
      } else if (o.outcome == "cancelled") {
        ++e->requests_cancelled;
      } else {
        ++e->requests_failed;
      }
      ++e->failures[o.outcome];
      e->requests.push_back(std::move(r));
      continue;
    }
    ++e->requests_ok;
    if (e->server_model.empty()) e->server_model = st.model;
    all_usage &= st.usage_completion_tokens >= 0;
    const int64_t prompt =
        st.usage_prompt_tokens >= 0 ? st.usage_prompt_tokens : reqs[i].prompt_len;
    s->requests.push_back({reqs[i].arrival_s, o.sent_s, st.first_content_s, st.last_content_s,
                           prompt, std::max<int64_t>(1, OutputTokens(st))});
    for (size_t k = 1; k < st.content_s.size(); ++k) {
      itl->push_back(st.content_s[k] - st.content_s[k - 1]);
    }
    e->requests.push_back(std::move(r));
  }
  e->length_source = all_usage ? "usage" : "stream";
}

ServingRecord ServingSection(const WorkloadSpec& w, int64_t concurrency) {
  ServingRecord s;
  const ServingSpec& sv = w.serving;
  s.load = concurrency > 0 ? "closed-loop" : (sv.arrival.empty() ? "poisson" : sv.arrival);
  s.target_rate = concurrency > 0 ? 0 : sv.rate;
  s.concurrency = concurrency;
  s.prompt_dist = sv.prompt_dist.empty() ? "fixed:" + std::to_string(w.prompt_len) : sv.prompt_dist;
  s.output_dist = sv.output_dist.empty() ? "fixed:" + std::to_string(w.gen_len) : sv.output_dist;
  if (w.endpoint.dataset.size() > 0) {
    s.prompt_dist = "dataset";
    if (sv.output_dist.empty()) s.output_dist = "dataset";
  }
  s.kv_note = "the server schedules its own batches and KV cache; the client sees neither";
  s.warmup_requests = sv.warmup_requests;
  s.slo_ttft_s = sv.slo_ttft;
  s.slo_tpot_s = sv.slo_tpot;
  return s;
}

std::string FailureSummary(const EndpointRecord& e) {
  std::string s;
  for (const auto& [k, v] : e.failures) {
    if (k == "not_sent" || k == "cancelled") continue;
    s += (s.empty() ? "" : ", ") + std::to_string(v) + " " + k;
  }
  return s;
}

}  // namespace

namespace {

/// The measured pass with the energy window around it; fills the record's sections.
Status Measure(StreamClient& client, const WorkloadSpec& w, const EndpointTarget& t,
               const RunnerOptions& opts, const RequestStyle& style, RunRecord* rec) {
  EndpointRecord& e = *rec->endpoint;
  const int64_t concurrency = w.scenario == "single-stream" ? 1
                              : w.serving.rate > 0          ? 0
                                                            : w.serving.concurrency;
  std::vector<EndpointRequest> reqs;
  CB_RETURN_IF_ERROR(MakeEndpointRequests(w, t, style, 0, MeasuredRequests(w), &reqs));
  EndpointPassConfig cfg;
  cfg.api = t.api;
  cfg.url = t.url.For(ApiRoute(t.api));
  cfg.concurrency = concurrency;
  cfg.deadline_s = DeadlineOf(w, reqs, concurrency);
  cfg.max_failures = static_cast<int64_t>(
      std::floor(w.endpoint.max_failure_ratio * static_cast<double>(reqs.size())));
  cfg.cancelled = &CancelRequested;
  e.run_timeout_s = cfg.deadline_s;
  Progress(opts, "sending " + std::to_string(reqs.size()) + " requests to " + cfg.url + " (" +
                     (concurrency > 0 ? std::to_string(concurrency) + " in flight"
                                      : w.serving.arrival + " arrivals at " +
                                            Fmt(w.serving.rate, "%g") + " req/s") +
                     ")");
  const Status energy_started = StartEnergy(opts);
  EndpointPassResult res;
  CB_RETURN_IF_ERROR(RunEndpointPass(client, cfg, &reqs, &res));
  RecordEnergy(opts, energy_started, rec);
  e.stopped_early = res.stopped_early;
  e.max_in_flight = res.max_in_flight;
  e.client_cpu_s = res.cpu_s;
  e.client_cpu_ratio = res.wall_s > 0 ? res.cpu_s / res.wall_s : 0;
  ServingRecord s = ServingSection(w, concurrency);
  std::vector<double> itl;
  RecordRequests(reqs, res, &s, &e, &itl);
  rec->serving = std::move(s);
  if (!itl.empty()) {
    rec->metrics.push_back(
        Metric{"itl_seconds", "s", Provenance::kMeasured, Median(itl), true, Summarize(itl)});
  }
  const double issued = static_cast<double>(std::max<int64_t>(1, e.requests_issued));
  rec->metrics.push_back(Metric{"request_failure_ratio",
                                "ratio",
                                Provenance::kMeasured,
                                static_cast<double>(e.requests_failed) / issued,
                                false,
                                {}});
  if (res.deadline_passed) {
    e.notes.push_back("the pass's deadline (" + Fmt(cfg.deadline_s, "%g") +
                      " s) passed with requests open");
  }
  return Status::Ok();
}

/// Applies the serving metrics and validity rules, then the failure rule: more failed, cancelled
/// or unsent requests than max_failure_ratio allows make the run invalid.
void Judge(const WorkloadSpec& w, const EndpointTarget& t, RunRecord* rec) {
  EndpointRecord& e = *rec->endpoint;
  const int64_t total = e.requests_issued + e.requests_not_sent;
  const int64_t allowed =
      static_cast<int64_t>(std::floor(w.endpoint.max_failure_ratio * static_cast<double>(total)));
  if (e.requests_ok > 0) {
    AddServingMetrics(Provenance::kMeasured, t.devices, rec);
    ApplyValidity(RulesFor(w), ServingValidityInput(*rec), rec);
  }
  const int64_t bad = e.requests_failed + e.requests_cancelled + e.requests_not_sent;
  if (bad > allowed) {
    std::string why =
        std::to_string(e.requests_failed) + " of " + std::to_string(total) + " requests failed";
    if (e.requests_failed > 0) why += " (" + FailureSummary(e) + ")";
    if (e.stopped_early || e.requests_not_sent > 0) {
      why += "; the run stopped early: " + std::to_string(e.requests_cancelled) + " cancelled, " +
             std::to_string(e.requests_not_sent) + " not sent";
    }
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%g", w.endpoint.max_failure_ratio);
    Invalid(rec, why + "; more than --max-failure-ratio " + ratio + " allows");
  } else if (e.requests_ok == 0) {
    Invalid(rec, "no request completed");
  }
}

}  // namespace

Status RunEndpoint(const WorkloadSpec& w, const EndpointTarget& t, const RunnerOptions& opts,
                   RunRecord* rec) {
  rec->workload = w;
  rec->device = t.props;
  rec->layers_run = 0;
  rec->extrapolated = false;
  rec->verification.status = "not_run";
  rec->verification.message = "an endpoint's numerics are the server's; clusterbench times it";
  rec->endpoint = Describe(w, t);
  EndpointRecord& e = *rec->endpoint;
  ClientOptions co;
  co.connect_timeout_s = w.endpoint.connect_timeout;
  co.request_timeout_s = w.endpoint.request_timeout;
  co.stall_timeout_s = w.endpoint.stall_timeout;
  co.api_key = t.api_key;
  co.ca_file = w.endpoint.ca_file;
  co.insecure_tls = w.endpoint.insecure_tls;
  std::unique_ptr<StreamClient> client;
  CB_RETURN_IF_ERROR(StreamClient::Create(co, &client));
  Progress(opts, "asking " + t.url.Base() + " what it serves");
  const ProbeResult probe = ProbeEndpoint(*client, w, t);
  if (probe.cancelled) return Status::Cancelled("interrupted");
  e.served_models = probe.served_models;
  e.notes.insert(e.notes.end(), probe.notes.begin(), probe.notes.end());
  if (!probe.ok) {
    e.failures[probe.failure] = 1;
    Invalid(rec, probe.message);
    return Status::Ok();
  }
  e.requested_model = probe.model;
  RequestStyle style{probe.model, w.endpoint.ignore_eos};
  if (w.serving.warmup_requests > 0) {
    Progress(opts, "warm-up: " + std::to_string(w.serving.warmup_requests) + " requests");
    std::string fatal;
    CB_RETURN_IF_ERROR(WarmUp(*client, w, t, &style, &e, &fatal));
    if (!fatal.empty()) {
      Invalid(rec, fatal);
      return Status::Ok();
    }
  }
  CB_RETURN_IF_ERROR(Measure(*client, w, t, opts, style, rec));
  Judge(w, t, rec);
  return Status::Ok();
}

void FinishEndpointCost(const EndpointTarget& t, RunRecord* rec) {
  if (!rec->cost) return;
  CostRecord& c = *rec->cost;
  c.devices = t.devices;
  if (t.hardware == nullptr && c.basis == "none") {
    c.notes.assign(1, "the hardware behind " + t.url.Base() +
                          " is undeclared: give --device or --system (and --devices), or "
                          "--price-per-hour");
  } else {
    c.notes.push_back("devices: " + std::to_string(t.devices) + " " +
                      (t.hardware ? t.hardware->id : std::string("undeclared")) + " behind " +
                      t.url.Base() +
                      ", as declared (--device/--system, --devices); the server's use of them "
                      "is not seen");
  }
  AddCostMetrics(rec);
}

}  // namespace cb
