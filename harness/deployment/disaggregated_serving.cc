#include "harness/deployment/disaggregated_serving.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <memory>
#include <queue>
#include <random>
#include <string>

#include "harness/cancel.h"

namespace cb {
namespace {

constexpr double kNever = std::numeric_limits<double>::infinity();

struct Active {
  int64_t index = 0;
  int64_t done = 0;  ///< prefill: prompt tokens in the cache; decode: tokens generated
  int64_t step_tokens = 0;
};

/// One attention group: its FIFO queue, its running sequences and its KV cache in use.
struct Group {
  std::deque<int64_t> waiting;
  std::vector<Active> running;
  int64_t kv_used = 0;
  std::unique_ptr<sim::StepModel> model;
};

/// A pool of groups stepping together on one clock.
class PoolSim {
 public:
  PoolSim(const ServingPool& pool, bool prefill, const std::vector<ServingRequest>& reqs)
      : pool_(pool),
        prefill_(prefill),
        reqs_(reqs),
        groups_(static_cast<size_t>(pool.groups)),
        ready_(reqs.size(), kNever) {}

  /// Each group its own step model: a model caches the costs of its last step's shape, and
  /// groups of different sizes would evict each other's.
  Status MakeModels() {
    const sim::StepModel& m = *pool_.model;
    for (Group& g : groups_) {
      CB_RETURN_IF_ERROR(
          sim::StepModel::Create(m.device(), m.topology(), m.stream().model, m.config(), &g.model));
    }
    return Status::Ok();
  }

  int64_t Tokens(int64_t index) const {  // KV a request holds in this pool
    const ServingRequest& r = reqs_[static_cast<size_t>(index)];
    return prefill_ ? r.prompt_len + 1 : r.prompt_len + r.output_len;
  }
  /// Request `index` joins a group's queue; it can start at `ready` (its arrival here).
  void Arrive(int64_t index, double ready) {
    ready_[static_cast<size_t>(index)] = ready;
    groups_[static_cast<size_t>(next_++ % pool_.groups)].waiting.push_back(index);
  }
  /// When the pool's next step can start, its clock at `now`: now while a group runs
  /// sequences, else when the first queued request is ready; kNever with nothing queued.
  double NextStart(double now) const {
    double next = kNever;
    for (const Group& g : groups_) {
      if (!g.running.empty()) return now;
      if (!g.waiting.empty())
        next = std::min(next, std::max(now, ready_[static_cast<size_t>(g.waiting.front())]));
    }
    return next;
  }
  /// FIFO admission of ready requests while a slot and KV are free; records when each
  /// request was admitted.
  void Admit(double now, std::vector<RequestOutcome>* outcomes) {
    for (Group& g : groups_) {
      while (!g.waiting.empty() && ready_[static_cast<size_t>(g.waiting.front())] <= now &&
             static_cast<int64_t>(g.running.size()) < pool_.slots &&
             g.kv_used + Tokens(g.waiting.front()) <= pool_.kv_tokens) {
        const int64_t i = g.waiting.front();
        g.waiting.pop_front();
        g.kv_used += Tokens(i);
        if (prefill_) (*outcomes)[static_cast<size_t>(i)].admitted_s = now;
        g.running.push_back(Active{i, prefill_ ? 0 : 1, 0});
      }
      stats_.kv_peak_tokens = std::max(stats_.kv_peak_tokens, g.kv_used);
    }
  }
  /// Runs one pool step; returns its seconds (0 when no group had anything to run).
  double Step(int mtp) {
    double seconds = 0, busy = 0, compute = 0, comm = 0, running = 0, exposed = 0;
    for (Group& g : groups_) {
      StepSummary s = prefill_ ? BuildPrefill(&g) : BuildDecode(&g, mtp);
      if (s.seqs == 0) continue;
      const sim::StepCost c = g.model->Step(
          s, prefill_ ? sim::AllToAllKind::kThroughput : sim::AllToAllKind::kLowLatency,
          !prefill_ && mtp > 0);
      if (c.seconds > seconds) {
        seconds = c.seconds;
        exposed = std::max(0.0, c.seconds - c.compute_seconds);
      }
      busy += c.busy_seconds;
      compute += c.compute_seconds;
      comm += c.comm_seconds;
      running += s.seqs;
      if (prefill_) {
        stats_.max_step_prefill_tokens =
            std::max(stats_.max_step_prefill_tokens, static_cast<int64_t>(s.tokens));
      }
    }
    if (seconds <= 0) return 0;
    const double n = static_cast<double>(pool_.groups);
    ++stats_.steps;
    stats_.busy_seconds += busy / n;
    stats_.compute_seconds += compute / n;
    stats_.comm_seconds += comm / n;
    stats_.exposed_comm_seconds += exposed;
    stats_.sum_running += running / n;
    return seconds;
  }
  /// After a step: sequences that finished their part here leave (their KV is freed).
  template <typename Gain, typename Leave>
  void Complete(Gain gain, Leave leave) {
    for (Group& g : groups_) {
      std::vector<Active> still;
      for (Active& a : g.running) {
        const ServingRequest& r = reqs_[static_cast<size_t>(a.index)];
        if (a.step_tokens > 0) a.done += prefill_ ? a.step_tokens : gain();
        const int64_t target = prefill_ ? r.prompt_len : r.output_len;
        if (a.done >= target) {
          g.kv_used -= Tokens(a.index);
          leave(a.index);
        } else {
          still.push_back(a);
        }
      }
      g.running = std::move(still);
    }
  }
  const ServingPoolStats& stats() const { return stats_; }

 private:
  StepSummary BuildPrefill(Group* g) const {
    StepSummary s;
    int64_t budget = std::max<int64_t>(1, pool_.prefill_chunk);
    for (Active& a : g->running) {
      const int64_t prompt = reqs_[static_cast<size_t>(a.index)].prompt_len;
      a.step_tokens = std::min(budget, prompt - a.done);
      if (a.step_tokens <= 0) {
        a.step_tokens = 0;
        continue;
      }
      budget -= a.step_tokens;
      AddSequence(static_cast<double>(a.step_tokens), static_cast<double>(a.done), &s);
    }
    return s;
  }
  StepSummary BuildDecode(Group* g, int mtp) const {
    StepSummary s;
    for (Active& a : g->running) {
      a.step_tokens = 1 + mtp;
      // The cache holds the prompt and every generated token but the last one fed back.
      const int64_t past = reqs_[static_cast<size_t>(a.index)].prompt_len + a.done - 1;
      AddSequence(1.0 + mtp, static_cast<double>(past), &s);
    }
    return s;
  }

  const ServingPool& pool_;
  const bool prefill_;
  const std::vector<ServingRequest>& reqs_;
  std::vector<Group> groups_;
  std::vector<double> ready_;  ///< per request
  int64_t next_ = 0;
  ServingPoolStats stats_;
};

Status CheckFits(const DisaggregatedServingConfig& cfg, const std::vector<ServingRequest>& reqs) {
  for (const ServingRequest& r : reqs) {
    const int64_t need[2] = {r.prompt_len + 1, r.prompt_len + r.output_len};
    const ServingPool* pools[2] = {&cfg.prefill, &cfg.decode};
    for (int p = 0; p < 2; ++p) {
      if (need[p] > pools[p]->kv_tokens) {
        return Status::InvalidInput(
            std::string("a request of ") + std::to_string(need[p]) + " tokens needs more KV " +
            "cache than a " + (p == 0 ? "prefill" : "decode") + " rank holds (" +
            std::to_string(pools[p]->kv_tokens) + " tokens after its weights)");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Status SimulateDisaggregatedServing(const DisaggregatedServingConfig& cfg,
                                    std::vector<ServingRequest>* requests,
                                    DisaggregatedServingResult* out) {
  std::vector<ServingRequest>& reqs = *requests;
  const int64_t n = static_cast<int64_t>(reqs.size());
  CB_RETURN_IF_ERROR(CheckFits(cfg, reqs));
  *out = DisaggregatedServingResult{};
  out->outcomes.assign(reqs.size(), RequestOutcome{});
  PoolSim prefill(cfg.prefill, true, reqs), decode(cfg.decode, false, reqs);
  CB_RETURN_IF_ERROR(prefill.MakeModels());
  CB_RETURN_IF_ERROR(decode.MakeModels());
  std::mt19937_64 rng(cfg.seed * 0x9e3779b97f4a7c15ULL + 29);
  std::uniform_real_distribution<double> u(0, 1);
  auto gain = [&] {  // tokens a sequence keeps from one verify step
    int64_t kept = 1;
    for (int d = 0; d < cfg.mtp && u(rng) < cfg.mtp_acceptance; ++d) ++kept;
    return kept;
  };
  using Ready = std::pair<double, int64_t>;  // a KV cache arriving at the decode pool
  std::priority_queue<Ready, std::vector<Ready>, std::greater<>> transfers;
  double tp = 0, td = 0;  // the pools' clocks
  int64_t issued = 0, done = 0;
  auto issue = [&](double at) {
    reqs[static_cast<size_t>(issued)].arrival_s = at;
    prefill.Arrive(issued++, at);
  };
  auto finish = [&](int64_t i, double at) {
    out->outcomes[static_cast<size_t>(i)].finish_s = at;
    out->end_s = std::max(out->end_s, at);
    ++done;
    if (cfg.concurrency > 0 && issued < n) issue(at);
  };
  if (cfg.concurrency > 0) {
    while (issued < std::min(n, cfg.concurrency)) issue(0);
  }
  for (int64_t iteration = 0; done < n; ++iteration) {
    if (iteration % 256 == 255 && CancelRequested()) return Status::Cancelled("interrupted");
    if (iteration % 8192 == 8191 && cfg.progress) {
      cfg.progress(static_cast<double>(done) / static_cast<double>(n));
    }
    double next_prefill = prefill.NextStart(tp);
    if (cfg.concurrency == 0 && issued < n) {
      next_prefill =
          std::min(next_prefill, std::max(tp, reqs[static_cast<size_t>(issued)].arrival_s));
    }
    double next_decode = decode.NextStart(td);
    if (!transfers.empty())
      next_decode = std::min(next_decode, std::max(td, transfers.top().first));
    if (next_prefill == kNever && next_decode == kNever) {
      return Status::Internal("disaggregated serving stalled with " + std::to_string(n - done) +
                              " requests unfinished");
    }
    if (next_prefill <= next_decode) {
      tp = next_prefill;
      while (cfg.concurrency == 0 && issued < n &&
             reqs[static_cast<size_t>(issued)].arrival_s <= tp) {
        prefill.Arrive(issued, reqs[static_cast<size_t>(issued)].arrival_s);
        ++issued;
      }
      prefill.Admit(tp, &out->outcomes);
      const double s = prefill.Step(0);
      if (s <= 0) return Status::Internal("the prefill pool has requests but cannot run them");
      tp += s;
      prefill.Complete([] { return int64_t{1}; },
                       [&](int64_t i) {
                         const double ready =
                             tp + cfg.transfer_s(reqs[static_cast<size_t>(i)].prompt_len);
                         out->outcomes[static_cast<size_t>(i)].first_token_s = ready;
                         if (reqs[static_cast<size_t>(i)].output_len <= 1) {
                           finish(i, ready);
                         } else {
                           transfers.push({ready, i});
                         }
                       });
    } else {
      td = next_decode;
      while (!transfers.empty() && transfers.top().first <= td) {
        decode.Arrive(transfers.top().second, transfers.top().first);
        transfers.pop();
      }
      decode.Admit(td, &out->outcomes);
      const double s = decode.Step(cfg.mtp);
      if (s <= 0) return Status::Internal("the decode pool has requests but cannot run them");
      td += s;
      decode.Complete(gain, [&](int64_t i) { finish(i, td); });
    }
  }
  out->prefill = prefill.stats();
  out->decode = decode.stats();
  return Status::Ok();
}

}  // namespace cb
