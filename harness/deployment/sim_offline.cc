#include "harness/deployment/sim_offline.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>

#include "backends/sim/sim_device.h"
#include "harness/cancel.h"
#include "harness/cost/energy_cost.h"
#include "harness/progress.h"
#include "harness/stats.h"
#include "harness/verify.h"

namespace cb {
namespace {

Metric Dist(const std::string& name, const std::string& unit, const std::vector<double>& samples) {
  return Metric{name, unit, Provenance::kModelled, Median(samples), true, Summarize(samples)};
}
Metric Scalar(const std::string& name, const std::string& unit, double value) {
  return Metric{name, unit, Provenance::kModelled, value, false, {}};
}

/// How a pool's attention groups share the batch: `heavy` groups hold one sequence more than
/// the `light` ones (LocalBatch's split).
struct Split {
  int64_t heavy_seqs = 0, heavy = 0, light_seqs = 0, light = 0;
};
Split SplitBatch(int64_t batch, const PoolLayout& pool) {
  const int64_t dp = std::max(1, pool.dp());
  Split s;
  s.light_seqs = batch / dp;
  s.heavy = batch % dp;
  s.heavy_seqs = s.light_seqs + (s.heavy > 0 ? 1 : 0);
  if (s.heavy == 0) s.heavy = dp;
  s.light = dp - s.heavy;
  return s;
}

/// Work of the whole pool: every rank of every attention group.
OpCost PoolWork(const Split& s, const PoolLayout& pool, const SimPhase& heavy,
                const SimPhase* light) {
  OpCost c;
  auto add = [&](const OpCost& w, double n) {
    c.flops += w.flops * n;
    c.bytes += w.bytes * n;
    c.weight_bytes += w.weight_bytes * n;
    c.kv_bytes += w.kv_bytes * n;
  };
  add(heavy.work, static_cast<double>(s.heavy) * pool.tp);
  if (light != nullptr) add(light->work, static_cast<double>(s.light) * pool.tp);
  return c;
}

void AddPhase(const sim::StepCost& c, SimPhase* r) {
  r->seconds += c.seconds;
  r->busy_seconds += c.busy_seconds;
  r->compute_seconds += c.compute_seconds;
  r->comm_seconds += c.comm_seconds;
  r->work += c.mean_work;
  r->step_s.push_back(c.seconds);
}

Status Verify(const WorkloadSpec& w, const SimTarget& t, const RunnerOptions& opts,
              RunRecord* rec) {
  Verification& v = rec->verification;
  if (!w.verify) {
    v.status = "not_run";
    v.message = "disabled with --no-verify";
    return Status::Ok();
  }
  const MemoryEstimate mem = EstimateMemory(w);
  std::string why;
  if (t.deployment.TotalDevices() > 1) {
    why = "a deployment of " + std::to_string(t.deployment.TotalDevices()) +
          " devices is simulated analytically; verify the stream with --devices 1";
  } else if (static_cast<double>(mem.verification) > sim::kMaxNumericsBytes) {
    why = "the sim computes numerics only for models up to 4 GiB of fp32 weights";
  }
  if (!why.empty()) {
    v.status = "not_run";
    v.message = "not run: " + why;
    return Status::Ok();
  }
  if (!opts.quiet) {
    PlanProgress::Get().Step(opts.progress_prefix, "verifying against the reference backend");
  }
  sim::SimDevice device(t.model, t.topology);
  SessionConfig cfg;
  cfg.dtype = w.dtype;
  cfg.max_sequences = w.batch;
  cfg.max_context = w.prompt_len + w.gen_len;
  cfg.max_step_tokens = w.batch * (w.prompt_len + w.gen_len);
  OpStream stream;
  CB_RETURN_IF_ERROR(BuildDenseDecoderStream(w.model, ShardSpec{}, w.LayersRun(), &stream));
  std::unique_ptr<Session> session;
  CB_RETURN_IF_ERROR(device.Open(cfg, &session));
  const WeightSource weights(w.seed);
  CB_RETURN_IF_ERROR(session->Load(stream, weights));
  CB_RETURN_IF_ERROR(VerifyAgainstReference(w, stream, *session, weights, nullptr, &v));
  if (v.status == "failed") {
    rec->status = "invalid";
    rec->status_message = "verification failed: " + v.message;
  }
  return Status::Ok();
}

void AddPhases(const std::vector<const SimPhase*>& phases, PoolRecord* r) {
  double seconds = 0, busy = 0, compute = 0;
  for (const SimPhase* ph : phases) {
    seconds += ph->seconds;
    busy += ph->busy_seconds;
    compute += ph->compute_seconds;
    r->communication_seconds += ph->comm_seconds;
  }
  r->busy_ratio = seconds > 0 ? busy / seconds : 0;
  r->exposed_communication_seconds = std::max(0.0, seconds - compute);
}

}  // namespace

SimPhase SimulatePrefill(const sim::StepModel& m, int64_t seqs, int64_t prompt, int64_t chunk) {
  SimPhase r;
  std::map<std::array<double, 4>, sim::StepCost> seen;
  int64_t seq = 0, done = 0;
  while (seq < seqs) {
    if (r.step_s.size() % 256 == 255 && CancelRequested()) {
      r.cancelled = true;
      return r;
    }
    StepSummary s;
    int64_t budget = std::max<int64_t>(1, chunk), finished = 0;
    while (budget > 0 && seq < seqs) {
      const int64_t n = std::min(budget, prompt - done);
      AddSequence(static_cast<double>(n), static_cast<double>(done), &s);
      budget -= n;
      done += n;
      if (done == prompt) {
        ++finished;
        ++seq;
        done = 0;
      }
    }
    const std::array<double, 4> key{s.tokens, s.seqs, s.attended, s.cached};
    auto it = seen.find(key);
    if (it == seen.end()) it = seen.emplace(key, m.Step(s, sim::AllToAllKind::kThroughput)).first;
    AddPhase(it->second, &r);
    for (int64_t f = 0; f < finished; ++f) r.done_s.push_back(r.seconds);
  }
  return r;
}

SimPhase SimulateDecode(const sim::StepModel& m, int64_t seqs, int64_t prompt, int64_t gen,
                        double tokens_per_step) {
  SimPhase r;
  const int mtp = m.config().mtp;
  const double n = 1.0 + mtp, q = static_cast<double>(seqs);
  const int64_t steps = static_cast<int64_t>(std::ceil(static_cast<double>(gen) / tokens_per_step));
  for (int64_t i = 0; i < steps; ++i) {
    if (i % 256 == 255 && CancelRequested()) {
      r.cancelled = true;
      return r;
    }
    const double context = static_cast<double>(prompt) + static_cast<double>(i) * tokens_per_step;
    const StepSummary s{q * n, q, q * (n * context + n * (n + 1) / 2), q * (context + n)};
    AddPhase(m.Step(s, sim::AllToAllKind::kLowLatency, mtp > 0), &r);
  }
  return r;
}

Status MakeStepModels(const WorkloadSpec& w, const SimTarget& t,
                      std::vector<std::unique_ptr<sim::StepModel>>* out) {
  out->clear();
  for (const PoolLayout& p : t.deployment.pools) {
    sim::StepModelConfig c;
    c.pool = p;
    c.redundant_experts = t.deployment.redundant_experts;
    c.overlap = t.deployment.overlap;
    c.mtp = p.role == PoolRole::kPrefill ? 0 : t.deployment.mtp;
    c.dtype = w.dtype;
    c.kv_dtype = w.KvDType();
    std::unique_ptr<sim::StepModel> m;
    CB_RETURN_IF_ERROR(sim::StepModel::Create(t.model, t.topology, w.model, c, &m));
    out->push_back(std::move(m));
  }
  return Status::Ok();
}

DeploymentRecord DescribeDeployment(const WorkloadSpec& w, const SimTarget& t) {
  const Deployment& d = t.deployment;
  DeploymentRecord dr;
  dr.model_version = sim::kModelVersion;
  dr.system = t.system_id;
  dr.device = t.device_id;
  dr.topology = t.topology.name;
  for (const PoolLayout& p : d.pools) {
    PoolRecord r;
    r.role = PoolRoleName(p.role);
    r.devices = p.devices;
    r.tp = p.tp;
    r.dp = p.dp();
    r.ep = p.ep;
    const SimRankLoad load = SimRankLoadOf(w, t, p);
    r.sequences_per_rank = load.seqs;
    const RankMemory m = SimRankMemory(w, t, p, load);
    r.weight_bytes = m.weights;
    r.kv_cache_bytes = m.kv_cache;
    r.activation_bytes = m.activations;
    r.memory_bytes = t.model.mem_bytes;
    dr.pools.push_back(r);
  }
  dr.redundant_experts = d.redundant_experts;
  dr.mtp = d.mtp;
  dr.mtp_acceptance = d.mtp > 0 ? d.mtp_acceptance : 0;
  dr.tokens_per_decode_step = d.TokensPerDecodeStep();
  dr.overlap = d.overlap;
  dr.kv_dtype = std::string(DTypeName(w.KvDType()));
  dr.prefill_chunk_tokens = t.prefill_chunk;
  for (const auto& [field, source] : t.model.eff.sources)
    dr.sources["efficiency." + field] = source;
  if (t.model.eff.sources.empty()) dr.sources["efficiency"] = t.model.eff.source;
  for (size_t i = 0; i < t.model.sources.size(); ++i) {
    dr.sources["device." + std::to_string(i)] = t.model.sources[i];
  }
  dr.sources["link.scale_up"] = t.topology.scale_up.source;
  dr.sources["link.scale_out"] = t.topology.scale_out.source;
  dr.sources["all_to_all.throughput"] = t.topology.a2a_throughput.source;
  dr.sources["all_to_all.low_latency"] = t.topology.a2a_low_latency.source;
  dr.notes = t.notes;
  if (w.layers > 0 && w.layers < w.model.num_layers) {
    dr.notes.push_back("the simulator models all " + std::to_string(w.model.num_layers) +
                       " layers; --layers applies to measured backends");
  }
  return dr;
}

EnergyRecord PoolsEnergy(const SimTarget& t, double window, double prefill_busy_s,
                         double decode_busy_s) {
  const sim::DeviceModel& m = t.model;
  EnergyRecord e;
  e.reading.source = "model";
  e.reading.window_s = window;
  e.reading.valid = window > 0;
  for (const PoolLayout& p : t.deployment.pools) {
    double busy = 0;
    if (p.role != PoolRole::kDecode) busy += prefill_busy_s;
    if (p.role != PoolRole::kPrefill) busy += decode_busy_s;
    const double joules = p.devices * (m.idle_w * window + (m.tdp_w - m.idle_w) * busy);
    e.reading.joules += joules;
    e.reading.domains.push_back({"model", PoolRoleName(p.role), joules});
    char note[320];
    std::snprintf(note, sizeof note,
                  "simulated (%s), %s pool: %d x (idle %.4g W x %.4g s + (TDP %.4g W - idle) x "
                  "%.4g busy s) = %.4g J; figures from catalog entry %s",
                  sim::kModelVersion, PoolRoleName(p.role).c_str(), p.devices, m.idle_w, window,
                  m.tdp_w, busy, joules, m.id.c_str());
    e.reading.notes.push_back(note);
  }
  return e;
}

void FinishSimCost(const SimTarget& t, RunRecord* rec) {
  if (!rec->cost) return;
  const Deployment& d = t.deployment;
  rec->cost->devices = d.TotalDevices();
  rec->cost->notes.push_back("devices: " + std::to_string(d.TotalDevices()) +
                             " simulated devices (" + d.Describe() + ") of " + t.topology.name);
  if (d.Disaggregated()) {
    rec->cost->input_devices = d.Prefill().devices;
    rec->cost->output_devices = d.Decode().devices;
    rec->cost->notes.push_back(
        "input tokens are priced by the prefill pool's devices, output tokens by the decode "
        "pool's; blended by all devices at the rate the slower pool sustains");
  }
  AddCostMetrics(rec);
}

}  // namespace cb

namespace cb {
namespace {

/// The phases of a run: prefill and decode of the heavy (and light) attention groups.
struct SimRun {
  Split prefill_split, decode_split;
  SimPhase prefill, prefill_light, decode, decode_light;
  double transfer_s = 0;      ///< one sequence's KV cache from the prefill to the decode pool
  double decode_start_s = 0;  ///< when decoding starts (every KV cache arrived)
};

Status Simulate(const WorkloadSpec& w, const SimTarget& t, SimRun* r) {
  std::vector<std::unique_ptr<sim::StepModel>> models;
  CB_RETURN_IF_ERROR(MakeStepModels(w, t, &models));
  const sim::StepModel& pm = *models.front();
  const sim::StepModel& dm = *models.back();
  const double tau = t.deployment.TokensPerDecodeStep();
  r->prefill_split = SplitBatch(w.batch, t.Prefill());
  r->decode_split = SplitBatch(w.batch, t.Decode());
  const Split& ps = r->prefill_split;
  const Split& ds = r->decode_split;
  r->prefill = SimulatePrefill(pm, ps.heavy_seqs, w.prompt_len, t.prefill_chunk);
  if (ps.light > 0 && ps.light_seqs > 0) {
    r->prefill_light = SimulatePrefill(pm, ps.light_seqs, w.prompt_len, t.prefill_chunk);
  }
  if (t.deployment.Disaggregated()) {
    // A rank's share of one sequence's cache crosses to a decode rank, over the scale-up
    // fabric when both pools sit in one domain.
    const double bytes =
        static_cast<double>(w.prompt_len) * RankKvBytesPerToken(w.model, t.Prefill(), w.KvDType());
    const bool same_domain = t.deployment.TotalDevices() <= t.topology.domain;
    r->transfer_s = sim::TransferSeconds(t.topology, same_domain, bytes);
  }
  r->decode_start_s = r->prefill.seconds + r->transfer_s;
  r->decode = SimulateDecode(dm, ds.heavy_seqs, w.prompt_len, w.gen_len, tau);
  if (ds.light > 0 && ds.light_seqs > 0) {
    r->decode_light = SimulateDecode(dm, ds.light_seqs, w.prompt_len, w.gen_len, tau);
  }
  return Status::Ok();
}

void AddMetrics(const WorkloadSpec& w, const SimTarget& t, const SimRun& r, RunRecord* rec) {
  const PoolLayout& pp = t.Prefill();
  const PoolLayout& dp = t.Decode();
  const double tau = t.deployment.TokensPerDecodeStep();
  const double prefill_s = r.prefill.seconds, decode_s = r.decode.seconds;
  const double tokens_in = static_cast<double>(w.batch * w.prompt_len);
  const double tokens_out = static_cast<double>(w.batch * w.gen_len);
  std::vector<double> ttft, tpot;
  for (double d : r.prefill.done_s) ttft.push_back(d + r.transfer_s);
  for (double s : r.decode.step_s) tpot.push_back(s / tau);
  auto& M = rec->metrics;
  M.push_back(Dist("prefill_tokens_per_second", "tokens/s", {tokens_in / prefill_s}));
  M.push_back(Dist("decode_tokens_per_second", "tokens/s", {tokens_out / decode_s}));
  M.push_back(Dist("ttft_seconds", "s", ttft));
  M.push_back(Dist("tpot_seconds", "s", tpot));
  M.push_back(Dist("e2e_latency_seconds", "s", {r.decode_start_s + decode_s}));
  M.push_back(Dist("harness_overhead_ratio", "ratio", {0.0}));
  if (t.deployment.TotalDevices() > 1) {
    M.push_back(Dist("prefill_tokens_per_second_per_device", "tokens/s",
                     {tokens_in / prefill_s / pp.devices}));
    M.push_back(Dist("decode_tokens_per_second_per_device", "tokens/s",
                     {tokens_out / decode_s / dp.devices}));
    const double busy = r.decode.compute_seconds + r.decode.comm_seconds;
    M.push_back(Dist("communication_share_ratio", "ratio",
                     {busy > 0 ? r.decode.comm_seconds / busy : 0.0}));
  }
  const OpCost pre = PoolWork(r.prefill_split, pp, r.prefill, &r.prefill_light);
  const OpCost dec = PoolWork(r.decode_split, dp, r.decode, &r.decode_light);
  const double peak = t.model.Peak(w.dtype), bw = t.model.mem_bandwidth;
  M.push_back(Scalar("prefill_flops_per_second", "FLOP/s", pre.flops / prefill_s));
  M.push_back(Scalar("decode_bytes_per_second", "bytes/s", dec.bytes / decode_s));
  // Each rank's modelled time is at least its work over the peaks, so no ratio exceeds 1.
  const double pd = pp.devices, dd = dp.devices;
  M.push_back(Scalar("mfu_prefill_ratio", "ratio", pre.flops / (prefill_s * pd * peak)));
  M.push_back(Scalar("mfu_decode_ratio", "ratio", dec.flops / (decode_s * dd * peak)));
  M.push_back(Scalar("mbu_prefill_ratio", "ratio", pre.bytes / (prefill_s * pd * bw)));
  M.push_back(Scalar("mbu_decode_ratio", "ratio", dec.bytes / (decode_s * dd * bw)));
}

void AddEnergyAndSamples(const WorkloadSpec& w, const SimTarget& t, const SimRun& r,
                         RunRecord* rec) {
  const double window = r.decode_start_s + r.decode.seconds;
  if (t.model.tdp_w > 0) {
    rec->energy = PoolsEnergy(t, window, r.prefill.busy_seconds, r.decode.busy_seconds);
  }
  RepetitionSample s;
  s.prefill_s = r.prefill.seconds + r.transfer_s;
  s.decode_step_s = r.decode.step_s;
  s.e2e_s = window;
  s.backend_s = window;
  rec->samples.push_back(std::move(s));
}

void AddLayout(const WorkloadSpec& w, const SimTarget& t, const SimRun& r, RunRecord* rec) {
  const Deployment& d = t.deployment;
  ClusterRecord c;
  c.world_size = d.TotalDevices();
  c.tp = t.Decode().tp;
  c.dp = t.Decode().dp();
  c.ep = t.Decode().ep;
  c.nodes = (c.world_size + std::max(1, t.topology.domain) - 1) / std::max(1, t.topology.domain);
  c.launcher = "sim";
  int rank = 0;
  for (const PoolLayout& p : d.pools) {
    const bool prefill = p.role != PoolRole::kDecode, decode = p.role != PoolRole::kPrefill;
    RankRecord rr{rank, 0, 0, "simulated",
                  decode ? r.decode_split.heavy_seqs : r.prefill_split.heavy_seqs};
    rr.prefill_s = prefill ? r.prefill.seconds : 0;
    if (decode) {
      const Distribution steps = Summarize(r.decode.step_s);
      rr.decode_step_min_s = steps.min;
      rr.decode_step_mean_s = steps.mean;
      rr.decode_step_max_s = steps.max;
    }
    const SimPhase& ph = decode ? r.decode : r.prefill;
    rr.comm_s = ph.comm_seconds;
    rr.comm_share = ph.compute_seconds + ph.comm_seconds > 0
                        ? ph.comm_seconds / (ph.compute_seconds + ph.comm_seconds)
                        : 0;
    c.ranks.push_back(rr);
    rank += p.devices;
  }
  rec->cluster = std::move(c);

  DeploymentRecord dr = DescribeDeployment(w, t);
  for (size_t i = 0; i < d.pools.size(); ++i) {
    const PoolLayout& p = d.pools[i];
    std::vector<const SimPhase*> phases;
    if (p.role != PoolRole::kDecode) phases.push_back(&r.prefill);
    if (p.role != PoolRole::kPrefill) phases.push_back(&r.decode);
    AddPhases(phases, &dr.pools[i]);
  }
  dr.kv_transfer_seconds = r.transfer_s;
  rec->deployment = std::move(dr);
}

}  // namespace

Status RunSimulatedOffline(const WorkloadSpec& w, const SimTarget& t, const RunnerOptions& opts,
                           RunRecord* rec) {
  rec->workload = w;
  rec->device = sim::PropsOf(t.model);
  rec->layers_run = static_cast<int>(w.model.num_layers);
  rec->extrapolated = false;
  for (int d = 0; d < kDTypeCount; ++d) {
    rec->ceilings.matmul_flops_per_s[d] = rec->device.peak_flops[d];
  }
  rec->ceilings.mem_read_bytes_per_s = rec->device.mem_bandwidth_bytes_per_s;
  rec->ceilings.source =
      std::string(sim::kModelVersion) + ": the simulated device's modelled peaks";
  rec->precision = PrecisionLabel(w.dtype, false);  // the simulator models W8A8 compute
  CB_RETURN_IF_ERROR(Verify(w, t, opts, rec));
  if (rec->status == "invalid") return Status::Ok();
  if (!opts.quiet) {
    PlanProgress::Get().Step(opts.progress_prefix,
                             "modelling " + t.deployment.Describe() + " on " + t.topology.name);
  }
  SimRun r;
  CB_RETURN_IF_ERROR(Simulate(w, t, &r));
  if (r.prefill.cancelled || r.decode.cancelled || r.prefill_light.cancelled ||
      r.decode_light.cancelled) {
    return Status::Cancelled("interrupted");
  }
  AddMetrics(w, t, r, rec);
  AddEnergyAndSamples(w, t, r, rec);
  AddLayout(w, t, r, rec);
  rec->generated_tokens.clear();
  rec->status = "ok";
  return Status::Ok();
}

}  // namespace cb
