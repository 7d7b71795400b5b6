#include "harness/scenarios/serving_runner.h"

#include <algorithm>
#include <random>

#include "harness/core/fmt.h"
#include "harness/run_events.h"
#include "harness/scenarios/distributions.h"
#include "harness/scenarios/serving_fields.h"
#include "harness/scenarios/serving_metrics.h"
#include "harness/scenarios/validity.h"
#include "harness/verify.h"

namespace cb {
namespace {

struct Dists {
  LengthDist prompt, output;
};

Status ResolveDists(const WorkloadSpec& w, Dists* d) {
  d->prompt = LengthDist::Fixed(w.prompt_len);
  d->output = LengthDist::Fixed(w.gen_len);
  if (!w.serving.prompt_dist.empty()) {
    CB_RETURN_IF_ERROR(LengthDist::Parse(w.serving.prompt_dist, "prompt_dist", &d->prompt));
  }
  if (!w.serving.output_dist.empty()) {
    CB_RETURN_IF_ERROR(LengthDist::Parse(w.serving.output_dist, "output_dist", &d->output));
  }
  return Status::Ok();
}

int64_t Slots(const WorkloadSpec& w) { return w.scenario == "single-stream" ? 1 : w.batch; }
int64_t Concurrency(const WorkloadSpec& w) {
  if (w.scenario == "single-stream") return 1;
  return w.serving.rate > 0 ? 0 : w.serving.concurrency;
}
}  // namespace

int64_t MeasuredRequests(const WorkloadSpec& w) {
  return w.serving.requests > 0 ? w.serving.requests
                                : std::max<int64_t>(1, RulesFor(w).min_requests);
}

Status MakeRequests(const WorkloadSpec& w, int64_t first, int64_t count, int64_t vocab,
                    std::vector<ServingRequest>* out) {
  Dists d;
  CB_RETURN_IF_ERROR(ResolveDists(w, &d));
  std::mt19937_64 rng(w.seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(first) + 17);
  ArrivalProcess arrivals;
  const bool open = Concurrency(w) == 0;
  if (open)
    CB_RETURN_IF_ERROR(
        ArrivalProcess::Parse(w.serving.arrival, w.serving.rate, "arrival", &arrivals));
  out->clear();
  double t = 0;
  for (int64_t i = 0; i < count; ++i) {
    ServingRequest r;
    r.prompt_len = d.prompt.Sample(rng);
    r.output_len = d.output.Sample(rng);
    if (open) {
      t += arrivals.NextGap(rng);
      r.arrival_s = t;
    }
    for (int64_t p = 0; p < r.prompt_len; ++p) {
      r.prompt.push_back(SyntheticToken(w.seed, first + i, p, vocab));
    }
    out->push_back(std::move(r));
  }
  return Status::Ok();
}

Status DescribeServing(const WorkloadSpec& w, int64_t concurrency, int64_t slots,
                       int64_t max_prefill_tokens, ServingRecord* s) {
  Dists dists;
  CB_RETURN_IF_ERROR(ResolveDists(w, &dists));
  const ServingSpec& sv = w.serving;
  s->load = concurrency > 0 ? "closed-loop" : (sv.arrival.empty() ? "poisson" : sv.arrival);
  s->target_rate = concurrency > 0 ? 0 : sv.rate;
  s->concurrency = concurrency;
  s->prompt_dist = dists.prompt.text();
  s->output_dist = dists.output.text();
  s->max_batch = slots;
  s->max_prefill_tokens = max_prefill_tokens;
  s->kv_page_tokens = sv.kv_page_tokens;
  s->slo_ttft_s = sv.slo_ttft;
  s->slo_tpot_s = sv.slo_tpot;
  return Status::Ok();
}

void AddRequestSamples(const std::vector<ServingRequest>& reqs,
                       const std::vector<RequestOutcome>& outcomes, ServingRecord* s) {
  for (size_t i = 0; i < reqs.size(); ++i) {
    const RequestOutcome& o = outcomes[i];
    s->requests.push_back({reqs[i].arrival_s, o.admitted_s, o.first_token_s, o.finish_s,
                           reqs[i].prompt_len, reqs[i].output_len});
  }
}

namespace {

/// The pass's slots, prefill budget and KV pages: the slots' storage, or less when the memory
/// budget is smaller (kResourceExhausted when one request of the longest context cannot fit).
Status PlanPass(const WorkloadSpec& w, const DeviceProps& props, const RunnerOptions& opts,
                int64_t max_context, PassConfig* pc) {
  const ServingSpec& sv = w.serving;
  const int64_t slots = Slots(w);
  WorkloadSpec sized = w;
  sized.batch = slots;
  sized.prompt_len = std::max<int64_t>(1, max_context - w.gen_len);
  const MemoryEstimate mem = EstimateMemory(sized);
  auto no_room = [&] {
    return Status::Exhausted(w.model.name + ": no room for the KV cache of one " +
                             std::to_string(max_context) + "-token request on " + props.name);
  };
  int64_t pool_tokens = slots * max_context;  // what the slots hold; less if memory is short
  if (opts.kv_pool_tokens > 0) {
    if (opts.kv_pool_tokens < max_context) return no_room();
    pool_tokens = std::min(pool_tokens, opts.kv_pool_tokens);
  } else if (props.mem_bytes > 0 && mem.kv_cache > 0) {
    const double per_token = static_cast<double>(mem.kv_cache) / static_cast<double>(pool_tokens);
    const double budget = static_cast<double>(props.mem_bytes) -
                          static_cast<double>(mem.weights + mem.activations + mem.verification);
    if (budget < per_token * static_cast<double>(max_context)) return no_room();
    pool_tokens = std::min<int64_t>(pool_tokens, static_cast<int64_t>(budget / per_token));
  }
  pc->slots = slots;
  pc->max_prefill_tokens = EffectiveMaxPrefillTokens(w);
  pc->kv_page_tokens = sv.kv_page_tokens;
  // Each slot gets whole pages for the longest context, so the default pool never keeps a
  // slot idle by rounding.
  const int64_t pages_per_slot = (max_context + sv.kv_page_tokens - 1) / sv.kv_page_tokens;
  pc->kv_pages = sv.kv_pages > 0
                     ? sv.kv_pages
                     : std::min(slots * pages_per_slot,
                                std::max(pages_per_slot, pool_tokens / sv.kv_page_tokens));
  pc->concurrency = Concurrency(w);
  return Status::Ok();
}

/// Verification of the loaded session against the reference (or why it is not run): fills
/// the record's verification and accuracy; a failed check marks the run invalid.
Status VerifyServing(const WorkloadSpec& w, const OpStream& stream, Session& session,
                     const WeightSource& weights, bool weight_only, int64_t verify_batch,
                     const RunnerOptions& opts, RunRecord* rec) {
  if (!w.verify) {
    rec->verification.status = "not_run";
    rec->verification.message = "disabled with --no-verify";
    return Status::Ok();
  }
  Progress(opts, "verifying against the reference backend");
  WorkloadSpec vw = w;
  vw.batch = verify_batch;
  AccuracyRecord accuracy;
  CB_RETURN_IF_ERROR(VerifyAgainstReference(vw, stream, session, weights, nullptr,
                                            &rec->verification, weight_only, &accuracy));
  if (IsQuantized(w.dtype) && accuracy.positions > 0) rec->accuracy = accuracy;
  if (rec->verification.status == "failed") {
    rec->status = "invalid";
    rec->status_message = "verification failed: " + rec->verification.message;
  }
  return Status::Ok();
}

/// The record's serving section and figures from a measured pass.
Status AddServingRecord(const WorkloadSpec& w, const PassConfig& pc, const PassResult& result,
                        const std::vector<ServingRequest>& reqs, const RunnerOptions& opts,
                        Provenance how, RunRecord* rec) {
  ServingRecord s;
  CB_RETURN_IF_ERROR(DescribeServing(w, pc.concurrency, pc.slots, pc.max_prefill_tokens, &s));
  s.replicas = std::max<int64_t>(1, opts.serving_replicas);
  s.kv_pages = result.kv_pages_total;
  s.kv_pages_peak = result.kv_pages_peak;
  s.kv_note =
      "a page allocator governs admission (pages for a request's whole context are taken when "
      "it is admitted and returned when it finishes); the backend's KV cache stays slot-based "
      "(one contiguous region per slot), not paged";
  s.warmup_requests = w.serving.warmup_requests;
  s.steps = result.steps;
  s.max_step_prefill_tokens = result.max_step_prefill_tokens;
  s.mean_running_batch =
      result.steps > 0 ? result.sum_running / static_cast<double>(result.steps) : 0;
  AddRequestSamples(reqs, result.outcomes, &s);
  if (!result.outcomes.empty()) rec->generated_tokens = result.outcomes.front().tokens;
  rec->serving = std::move(s);
  AddServingMetrics(how, std::max(1, opts.serving_devices), rec);
  ApplyValidity(RulesFor(w), ServingValidityInput(*rec), rec);
  return Status::Ok();
}

}  // namespace

Status RunServing(const WorkloadSpec& w, Device& device, const RunnerOptions& opts,
                  RunRecord* rec) {
  const DeviceProps props = device.Props();
  rec->workload = w;
  rec->device = props;
  rec->layers_run = w.LayersRun();
  rec->extrapolated = false;
  rec->ceilings = opts.ceilings;
  const Provenance how = device.clock().simulated() ? Provenance::kModelled : Provenance::kMeasured;
  const Support support = device.Supports(w.dtype);
  if (!support.supported) {
    rec->status = "skipped";
    rec->status_message = support.reason;
    return Status::Ok();
  }
  rec->precision = PrecisionLabel(w.dtype, support.weight_only);
  if (opts.parallel != nullptr && !opts.parallel->virtual_cluster &&
      (opts.parallel->world_size > 1 || opts.parallel->tp > 1 || opts.parallel->dp > 1)) {
    return Status::InvalidInput(w.scenario +
                                " runs on one device: no MPI ranks, --tp, --dp or --devices");
  }
  Dists dists;
  CB_RETURN_IF_ERROR(ResolveDists(w, &dists));
  const ServingSpec& sv = w.serving;
  const int64_t max_context =
      std::max(dists.prompt.Max() + dists.output.Max(), w.prompt_len + w.gen_len);
  PassConfig pc;
  CB_RETURN_IF_ERROR(PlanPass(w, props, opts, max_context, &pc));
  const int64_t verify_batch = std::min(w.batch, pc.slots);

  OpStream stream;
  CB_RETURN_IF_ERROR(BuildDenseDecoderStream(w.model, ShardSpec{}, w.LayersRun(), &stream));
  pc.vocab = stream.dims.vocab_full;
  SessionConfig cfg;
  cfg.dtype = w.dtype;
  cfg.max_sequences = std::max(pc.slots, verify_batch);
  cfg.max_context = max_context;
  cfg.kv_dtype = w.kv_dtype;
  cfg.weight_only = support.weight_only;
  cfg.max_step_tokens = std::max(pc.max_prefill_tokens + pc.slots, verify_batch * w.prompt_len);
  std::unique_ptr<Session> session;
  if (Status s = device.Open(cfg, &session); !s.ok()) {
    return SkipOrFailRun(rec, "opening a session", s);
  }
  Progress(opts, "loading " + w.model.name);
  const WeightSource weights(w.seed);
  if (Status s = session->Load(stream, weights); !s.ok()) {
    return SkipOrFailRun(rec, "loading weights", s);
  }
  if (Status s =
          VerifyServing(w, stream, *session, weights, support.weight_only, verify_batch, opts, rec);
      !s.ok()) {
    return SkipOrFailRun(rec, "verification", s);
  }
  if (rec->status == "invalid") return Status::Ok();

  Clock& clock = device.clock();
  PassResult result;
  if (sv.warmup_requests > 0) {
    Progress(opts, "warm-up: " + std::to_string(sv.warmup_requests) + " requests");
    std::vector<ServingRequest> warm;
    CB_RETURN_IF_ERROR(MakeRequests(w, 1000000, sv.warmup_requests, pc.vocab, &warm));
    for (ServingRequest& r : warm) r.arrival_s = 0;  // all at once, not timed
    PassConfig wc = pc;
    wc.concurrency = 0;
    if (Status s = RunServingPass(*session, clock, stream, wc, &warm, &result); !s.ok()) {
      return FailRun(rec, "warm-up", s);
    }
  }
  std::vector<ServingRequest> reqs;
  CB_RETURN_IF_ERROR(MakeRequests(w, 0, MeasuredRequests(w), pc.vocab, &reqs));
  Progress(opts,
           "serving " + std::to_string(reqs.size()) + " requests (" +
               (pc.concurrency > 0 ? "closed loop, " + std::to_string(pc.concurrency) + " in flight"
                                   : sv.arrival + " arrivals at " + Fmt(sv.rate, "%g") + " req/s") +
               ", batch up to " + std::to_string(pc.slots) + ")");
  const Status energy_started = StartEnergy(opts);
  if (Status s = RunServingPass(*session, clock, stream, pc, &reqs, &result); !s.ok()) {
    return FailRun(rec, "serving", s);
  }
  RecordEnergy(opts, energy_started, rec);
  if (!result.tokens_valid) {
    rec->status = "invalid";
    rec->status_message = "the backend produced an out-of-range token (NaN logits?)";
    return Status::Ok();
  }
  return AddServingRecord(w, pc, result, reqs, opts, how, rec);
}

void TagSweep(const WorkloadSpec& w, RunRecord* rec) {
  if (!w.serving.sweep_group.empty()) {
    rec->sweep = SweepRecord{w.serving.sweep_group, w.serving.sweep_axis, w.serving.sweep_value,
                             w.serving.at_interactivity};
  }
}

void ApplyOfflineValidity(const WorkloadSpec& w, RunRecord* rec) {
  if (rec->status != "ok") return;
  // Offline rules are off by default; a run the ceiling check finds unstable gets its
  // validity section whatever the rules.
  const ValidityRules rules = RulesFor(w);
  const ValidityInput in = OfflineValidityInput(*rec);
  if (rules.min_duration_s > 0 || rules.min_requests > 0 || rules.max_cv > 0 || w.serving.strict ||
      !in.unstable_reasons.empty()) {
    ApplyValidity(rules, in, rec);
  }
}

Status RunScenario(const WorkloadSpec& w, Device& device, const RunnerOptions& opts,
                   RunRecord* rec) {
  TagSweep(w, rec);
  if (w.scenario == "single-stream" || w.scenario == "server") {
    return RunServing(w, device, opts, rec);
  }
  CB_RETURN_IF_ERROR(RunOffline(w, device, opts, rec));
  ApplyOfflineValidity(w, rec);
  return Status::Ok();
}

}  // namespace cb
