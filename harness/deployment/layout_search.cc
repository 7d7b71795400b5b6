#include "harness/deployment/layout_search.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "backends/sim/sim_device.h"
#include "harness/cancel.h"
#include "harness/cost/cost_model.h"
#include "harness/deployment/served_check.h"
#include "harness/deployment/sim_offline.h"

namespace cb {
namespace {

constexpr int64_t kMaxSeqsPerRank = 1024;

/// Redundant experts that make the experts divisible by every pool's ep (0 when none needs).
int RedundantFor(const ModelSpec& m, const std::vector<PoolLayout>& pools) {
  int64_t l = 1;
  for (const PoolLayout& p : pools) l = std::lcm(l, static_cast<int64_t>(std::max(1, p.ep)));
  if (!m.moe.enabled() || l <= 1) return 0;
  return static_cast<int>((l - m.moe.num_experts % l) % l);
}

/// Layouts for a pool of `n` devices: tensor parallel within a scale-up domain, and for MoE
/// models expert parallel over the whole pool (data-parallel attention).
std::vector<PoolLayout> PoolCandidates(const ModelSpec& m, int n, int domain, PoolRole role) {
  std::vector<PoolLayout> out;
  for (int tp = 1; tp <= std::min(n, std::max(1, domain)); tp *= 2) {
    const PoolLayout p{role, n, tp, 1};
    if (n % tp == 0 && ValidatePool(m, p, 0, "").ok()) out.push_back(p);
  }
  if (m.moe.enabled() && n > 1) {
    const PoolLayout p{role, n, 1, n};
    if (ValidatePool(m, p, RedundantFor(m, {p}), "").ok()) out.push_back(p);
  }
  return out;
}

/// Splits of `n` devices into a prefill and a decode pool, in whole scale-up domains when the
/// system has several.
std::vector<int> PrefillSizes(int n, int domain) {
  std::vector<int> out;
  const int unit = domain < n ? domain : 1;
  for (double share : {1.0 / 8, 1.0 / 6, 1.0 / 4, 1.0 / 3, 1.0 / 2}) {
    const int p = std::max(unit, static_cast<int>(std::lround(n * share / unit)) * unit);
    if (p < n && std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

StepSummary DecodeStep(double seqs, double context, int mtp) {
  const double n = 1.0 + mtp;
  return StepSummary{seqs * n, seqs, seqs * (n * context + n * (n + 1) / 2), seqs * (context + n)};
}

struct Pricing {
  double per_device_hour = NAN, all_in_w = NAN;
};

/// The steady state of `t` with `seqs` sequences per decode rank (LayoutPoint).
Status Evaluate(const WorkloadSpec& w, const SimTarget& t, int64_t seqs, const Pricing& price,
                LayoutPoint* out) {
  std::vector<std::unique_ptr<sim::StepModel>> models;
  CB_RETURN_IF_ERROR(MakeStepModels(w, t, &models));
  const Deployment& d = t.deployment;
  const double tau = d.TokensPerDecodeStep(), n = static_cast<double>(seqs);
  const double P = static_cast<double>(w.prompt_len), G = static_cast<double>(w.gen_len);
  const double context = P + G / 2;
  LayoutPoint& pt = *out;
  pt.deployment = d;
  pt.seqs_per_rank = seqs;
  pt.prefill_chunk = t.prefill_chunk;
  double requests_per_s = 0;
  if (!d.Disaggregated()) {
    // Chunked prefill rides in the decode steps: each step prefills what keeps the batch full.
    const double p = std::min<double>(n * tau * P / G, static_cast<double>(t.prefill_chunk));
    pt.prefill_chunk = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(p)));
    StepSummary s = DecodeStep(n, context, d.mtp);
    s.tokens += p;
    s.seqs += p / P;
    s.attended += p * P / 2;
    s.cached += p;
    const auto kind = p > n ? sim::AllToAllKind::kThroughput : sim::AllToAllKind::kLowLatency;
    const double step = models.front()->Step(s, kind, d.mtp > 0).seconds;
    pt.tpot_s = step / tau;
    pt.ttft_s = std::ceil(P / std::max(1.0, p)) * step;
    requests_per_s = std::min(n * tau / G, p / P) / step * t.Decode().dp();
    pt.input_tokens_per_s = requests_per_s * P;
  } else {
    const sim::StepModel& pm = *models.front();
    const sim::StepModel& dm = *models.back();
    auto step_at = [&](double seqs) {
      return dm.Step(DecodeStep(seqs, context, d.mtp), sim::AllToAllKind::kLowLatency, d.mtp > 0)
          .seconds;
    };
    auto decode_rps_at = [&](double seqs, double step) {
      return seqs * tau / G / step * t.Decode().dp();
    };
    double step = step_at(n);
    const int64_t prompts = std::max<int64_t>(1, t.prefill_chunk / w.prompt_len);
    const SimPhase pre = SimulatePrefill(pm, prompts, w.prompt_len, t.prefill_chunk);
    const double prefill_rps = static_cast<double>(prompts) / pre.seconds * t.Prefill().dp();
    const double decode_rps = decode_rps_at(n, step);
    requests_per_s = std::min(prefill_rps, decode_rps);
    if (prefill_rps < decode_rps) {
      // The decode ranks hold only the sequences the prefill rate keeps in flight (Little's
      // law): the occupancy at which their throughput equals it, found by bisection
      // (throughput grows with the sequences a rank holds).
      double lo = 0, hi = n;
      for (int i = 0; i < 24; ++i) {
        const double mid = (lo + hi) / 2;
        (decode_rps_at(mid, step_at(mid)) < prefill_rps ? lo : hi) = mid;
      }
      step = step_at(hi);
    }
    const double bytes = P * RankKvBytesPerToken(w.model, t.Prefill(), w.KvDType());
    const double transfer =
        sim::TransferSeconds(t.topology, d.TotalDevices() <= t.topology.domain, bytes);
    pt.tpot_s = step / tau;
    pt.ttft_s = pre.seconds / static_cast<double>(pre.step_s.size()) *
                    std::ceil(P / static_cast<double>(t.prefill_chunk)) +
                transfer;
    pt.input_tokens_per_s = prefill_rps * P;
  }
  pt.output_tokens_per_s = requests_per_s * G;
  const double devices = d.TotalDevices();
  pt.usd_per_mtok_output =
      UsdPerMillionTokens(price.per_device_hour, d.TotalDevices(), pt.output_tokens_per_s);
  pt.usd_per_mtok_input = UsdPerMillionTokens(
      price.per_device_hour, d.Disaggregated() ? d.Prefill().devices : d.TotalDevices(),
      pt.input_tokens_per_s);
  pt.joules_per_output_token_all_in = price.all_in_w * devices / pt.output_tokens_per_s;
  pt.output_tokens_per_s_per_mw = pt.output_tokens_per_s / (price.all_in_w * devices / 1e6);
  return Status::Ok();
}

/// Every deployment of `n` devices the search tries.
std::vector<Deployment> Deployments(const SearchRequest& r, const ModelSpec& m, int n, int domain) {
  std::vector<std::vector<PoolLayout>> layouts;
  for (const PoolLayout& p : PoolCandidates(m, n, domain, PoolRole::kMixed)) layouts.push_back({p});
  if (r.disaggregation && n > 1) {
    for (int np : PrefillSizes(n, domain)) {
      const auto pre = PoolCandidates(m, np, domain, PoolRole::kPrefill);
      const auto dec = PoolCandidates(m, n - np, domain, PoolRole::kDecode);
      if (pre.empty() || dec.empty()) continue;
      // The widest layout of each pool: EP over the pool for MoE, else the largest tp.
      layouts.push_back({pre.back(), dec.back()});
    }
  }
  std::vector<Deployment> out;
  for (const auto& pools : layouts) {
    Deployment d;
    d.pools = pools;
    d.redundant_experts = RedundantFor(m, pools);
    if (d.redundant_experts > m.moe.num_experts) continue;
    const bool comm = std::any_of(pools.begin(), pools.end(),
                                  [](const PoolLayout& p) { return p.tp > 1 || p.ep > 1; });
    for (bool overlap : {false, true}) {
      if (overlap && !comm) continue;
      for (int mtp = 0; mtp <= (m.mtp_layers > 0 ? 1 : 0); ++mtp) {
        Deployment v = d;
        v.overlap = overlap;
        v.mtp = mtp;
        out.push_back(v);
      }
    }
  }
  return out;
}

bool Better(const LayoutPoint& a, const LayoutPoint& b) {
  if (a.usd_per_mtok_output != b.usd_per_mtok_output) {
    if (std::isnan(b.usd_per_mtok_output)) return true;
    if (std::isnan(a.usd_per_mtok_output)) return false;
    return a.usd_per_mtok_output < b.usd_per_mtok_output;
  }
  return a.output_tokens_per_s > b.output_tokens_per_s;
}

/// The served search over `meeting` (cheapest first): points are served in cost order, at most
/// r.serve_tries of them. A point is passed over when a point of the same deployment (dtype,
/// pools, EP, MTP, overlap) with no more sequences per rank was served and missed: more
/// sequences per rank only add load to the same ranks.
struct ServedSearch {
  const LayoutPoint* found = nullptr;            ///< the cheapest found meeting them served
  const LayoutPoint* cheapest_served = nullptr;  ///< of those served (none found)
  int checks = 0, passed_over = 0;
};

Status FindServed(const SearchRequest& r, const std::map<DType, SimTarget>& targets,
                  const std::vector<LayoutPoint*>& meeting, ServedSearch* out) {
  std::map<std::pair<DType, std::string>, int64_t> missed_at;  // fewest seqs/rank that missed
  for (LayoutPoint* p : meeting) {
    if (out->checks >= r.serve_tries) break;
    const auto key = std::make_pair(p->dtype, p->deployment.Describe());
    const auto missed = missed_at.find(key);
    if (missed != missed_at.end() && missed->second <= p->seqs_per_rank) {
      ++out->passed_over;
      continue;
    }
    CB_RETURN_IF_ERROR(ServeLayout(r.base, targets.at(p->dtype), *p, r.serve_load, r.serve_requests,
                                   r.slo_ttft_s, r.slo_tpot_s, &p->served));
    ++out->checks;
    if (!p->Served()) continue;
    if (p->served.meets_slo) {
      out->found = p;
      return Status::Ok();
    }
    if (out->cheapest_served == nullptr) out->cheapest_served = p;
    const auto [it, added] = missed_at.emplace(key, p->seqs_per_rank);
    if (!added) it->second = std::min(it->second, p->seqs_per_rank);
  }
  return Status::Ok();
}

/// Picks `res->best`: the cheapest point meeting the objectives at its steady state, or with
/// r.serve_load the cheapest found of those that still meets them served at that load (p99).
/// Without any: the status says why and `best` is the closest point.
Status PickBest(const SearchRequest& r, const std::map<DType, SimTarget>& targets,
                SystemResult* res) {
  std::vector<LayoutPoint*> meeting;
  for (LayoutPoint& p : res->points) {
    if (p.meets_slo) meeting.push_back(&p);
  }
  std::stable_sort(meeting.begin(), meeting.end(),
                   [](const LayoutPoint* a, const LayoutPoint* b) { return Better(*a, *b); });
  if (meeting.empty()) {
    const LayoutPoint* fastest = &res->points.front();
    for (const LayoutPoint& p : res->points) {
      if (p.tpot_s < fastest->tpot_s) fastest = &p;
    }
    res->status = "no_layout_meets_slo";
    char buf[512];  // the layout alone can take 150 characters
    std::snprintf(buf, sizeof buf,
                  "no layout meets the SLO; the lowest TPOT found is %.1f ms (TTFT %.2f s) "
                  "with %s",
                  fastest->tpot_s * 1e3, fastest->ttft_s, fastest->Layout().c_str());
    res->message = buf;
    res->best = *fastest;
    return Status::Ok();
  }
  res->best = *meeting.front();
  if (r.serve_load <= 0) return Status::Ok();
  ServedSearch search;
  CB_RETURN_IF_ERROR(FindServed(r, targets, meeting, &search));
  res->served_checks = search.checks;
  res->served_passed_over = search.passed_over;
  if (search.found != nullptr) {
    res->best = *search.found;
    return Status::Ok();
  }
  // None could be served: the steady state's answer stands, its served.skipped saying why.
  const LayoutPoint* first = search.cheapest_served;
  if (first == nullptr) return Status::Ok();
  res->best = *first;
  res->status = "no_layout_meets_slo";
  char buf[640];  // the layout alone can take 150 characters
  std::snprintf(buf, sizeof buf,
                "%d of the %zu layouts meeting the SLO at their steady state were served at "
                "%.0f%% of their rate (%d more passed over, a leaner one of their deployment "
                "having missed) and none meets it; the cheapest served (%s) has p99 TTFT "
                "%.2f s, p99 TPOT %.1f ms",
                search.checks, meeting.size(), r.serve_load * 100, search.passed_over,
                first->Layout().c_str(), first->served.ttft_p99_s, first->served.tpot_p99_s * 1e3);
  res->message = buf;
  return Status::Ok();
}

}  // namespace

WorkloadSpec InDType(const WorkloadSpec& base, DType dtype) {
  WorkloadSpec w = base;
  w.dtype = dtype;
  if (w.KvDType() == DType::kFP8 && dtype != DType::kFP8) w.kv_dtype.reset();
  return w;
}

std::string LayoutPoint::Layout() const {
  return std::string(DTypeName(dtype)) + " " + deployment.Describe() + ", " +
         std::to_string(seqs_per_rank) + " seqs/rank";
}

Status SearchSystem(const SearchRequest& r, const DeviceCatalog& catalog,
                    const CatalogEntry& system, SystemResult* out) {
  SystemResult res;
  res.system = system.id;
  res.device = system.device;
  res.name = system.name;
  res.devices = static_cast<int>(system.device_count);
  const ModelSpec& m = r.base.model;
  const bool priced = system.purchase_usd.known() || system.rental_usd_per_hour.known();
  const CatalogEntry* price_entry = priced ? &system : catalog.Find(system.device);
  CostRecord cost = ResolveCost(BaselineFromCatalog(*price_entry, "compare-hardware"), r.base.cost,
                                "compare-hardware");
  const Pricing price{CostPerDeviceHour(cost), cost.all_in_power_w};
  res.cost_per_device_hour_usd = price.per_device_hour;
  res.all_in_power_w = price.all_in_w;
  res.cost_basis = cost.basis;

  WorkloadSpec w = r.base;
  w.backend = "sim";
  w.deployment = DeploymentSpec{};
  w.deployment.system = system.id;
  w.deployment.tp = 1;
  w.verify = false;
  std::vector<DType> dtypes = r.dtypes;
  std::map<DType, SimTarget> targets;  ///< device and links per dtype, for serving
  std::string memory_error, unsupported;
  double closest = 0;
  bool any_fits = false;
  for (DType dt :
       dtypes.empty() ? std::vector<DType>{DType::kFP8, DType::kInt8, DType::kBF16} : dtypes) {
    w.dtype = dt;
    w.kv_dtype = InDType(r.base, dt).kv_dtype;
    // The device, links and chunk once per dtype; the layouts below.
    SimTarget t;
    if (Status s = ResolveSimDevice(w, catalog, "compare-hardware", &t); !s.ok()) {
      if (s.code() != StatusCode::kInvalidInput) return s;
      if (!dtypes.empty()) unsupported += (unsupported.empty() ? "" : "; ") + s.message();
      continue;  // not native on this device
    }
    t.prefill_chunk = std::max<int64_t>(t.prefill_chunk, w.prompt_len);
    targets[dt] = t;
    for (const Deployment& d : Deployments(r, m, res.devices, t.topology.domain)) {
      if (CancelRequested()) return Status::Cancelled("interrupted");
      t.deployment = d;
      for (int64_t seqs = 1; seqs <= kMaxSeqsPerRank; seqs *= 2) {
        w.batch = seqs * d.Decode().dp();
        if (Status ms = CheckSimMemory(w, t, ""); !ms.ok()) {
          // Report the layout that came closest: the smallest shard of the weights.
          const double weights = RankWeightBytes(m, d.Decode(), d.redundant_experts, dt);
          if (memory_error.empty() || weights < closest) {
            memory_error = ms.message();
            closest = weights;
          }
          break;
        }
        any_fits = true;
        LayoutPoint pt;
        pt.dtype = dt;
        CB_RETURN_IF_ERROR(Evaluate(w, t, seqs, price, &pt));
        pt.meets_slo = (r.slo_tpot_s <= 0 || pt.tpot_s <= r.slo_tpot_s) &&
                       (r.slo_ttft_s <= 0 || pt.ttft_s <= r.slo_ttft_s);
        res.points.push_back(pt);
        if (r.slo_tpot_s > 0 && pt.tpot_s > r.slo_tpot_s) break;  // TPOT grows with the batch
      }
    }
  }
  if (!any_fits) {
    res.status = "cannot_hold_model";
    res.message = !memory_error.empty()  ? "cannot hold " + m.name + ": " + memory_error
                  : !unsupported.empty() ? unsupported
                                         : "no dtype this device runs natively was asked for";
  } else {
    CB_RETURN_IF_ERROR(PickBest(r, targets, &res));
  }
  *out = std::move(res);
  return Status::Ok();
}

}  // namespace cb
