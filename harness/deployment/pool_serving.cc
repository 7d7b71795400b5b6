#include "harness/deployment/pool_serving.h"

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
  int64_t prefilled = 0;  ///< prompt tokens in the cache
  int64_t generated = 0;  ///< output tokens sampled (the first by the step ending the prompt)
  int64_t step_tokens = 0;
  bool prefilling = false;  ///< in the step being run
};

/// One attention group: its FIFO queue, its running sequences and its KV cache in use.
struct Group {
  std::deque<int64_t> waiting;
  std::vector<Active> running;
  int64_t kv_used = 0;
  std::unique_ptr<sim::StepModel> model;
};

/// What leaves a pool after a step, by request index.
struct Leaving {
  std::vector<int64_t> prefilled;  ///< prompts done whose first token was sampled this step
  std::vector<int64_t> finished;   ///< requests whose last token was sampled this step
};

/// A pool of groups stepping together on one clock.
class PoolSim {
 public:
  PoolSim(const ServingPool& pool, const std::vector<ServingRequest>& reqs)
      : pool_(pool),
        reqs_(reqs),
        groups_(static_cast<size_t>(pool.groups)),
        ready_(reqs.size(), kNever),
        group_of_(reqs.size(), 0) {}

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

  const ServingPool& pool() const { return pool_; }
  /// KV a request holds in this pool.
  int64_t Tokens(int64_t index) const {
    const ServingRequest& r = reqs_[static_cast<size_t>(index)];
    return pool_.role == PoolRole::kPrefill ? r.prompt_len + 1 : r.prompt_len + r.output_len;
  }
  /// Request `index` joins a group's queue; it can start at `ready` (its arrival here).
  void Arrive(int64_t index, double ready) {
    ready_[static_cast<size_t>(index)] = ready;
    group_of_[static_cast<size_t>(index)] = next_ % pool_.groups;
    groups_[static_cast<size_t>(next_++ % pool_.groups)].waiting.push_back(index);
  }
  /// A prefill pool keeps a prefilled request's KV cache until its transfer to the decode
  /// pool has completed; then it is freed here.
  void Release(int64_t index) {
    groups_[static_cast<size_t>(group_of_[static_cast<size_t>(index)])].kv_used -= Tokens(index);
  }
  /// When the pool's next step can start, its clock at `now`: now while a group runs
  /// sequences, else when the first queued request is ready; kNever with nothing queued.
  double NextStart(double now) const {
    double next = kNever;
    for (const Group& g : groups_) {
      if (!g.running.empty()) return now;
      if (!g.waiting.empty()) {
        next = std::min(next, std::max(now, ready_[static_cast<size_t>(g.waiting.front())]));
      }
    }
    return next;
  }
  /// FIFO admission of ready requests while a slot and KV are free; a prefill or mixed pool
  /// records when each request was admitted.
  void Admit(double now, std::vector<RequestOutcome>* outcomes) {
    const bool decode = pool_.role == PoolRole::kDecode;
    for (Group& g : groups_) {
      while (!g.waiting.empty() && ready_[static_cast<size_t>(g.waiting.front())] <= now &&
             static_cast<int64_t>(g.running.size()) < pool_.slots &&
             g.kv_used + Tokens(g.waiting.front()) <= pool_.kv_tokens) {
        const int64_t i = g.waiting.front();
        g.waiting.pop_front();
        g.kv_used += Tokens(i);
        Active a{i, 0, 0, 0, false};
        if (decode) {
          a.prefilled = reqs_[static_cast<size_t>(i)].prompt_len;
          a.generated = 1;
        } else {
          (*outcomes)[static_cast<size_t>(i)].admitted_s = now;
        }
        g.running.push_back(a);
      }
      stats_.kv_peak_tokens = std::max(stats_.kv_peak_tokens, g.kv_used);
    }
  }
  /// Runs one pool step; returns its seconds (0 when no group had anything to run).
  double Step(int mtp) {
    double seconds = 0, busy = 0, compute = 0, comm = 0, running = 0, exposed = 0;
    for (Group& g : groups_) {
      int64_t prompt_tokens = 0;
      const StepSummary s = Build(&g, mtp, &prompt_tokens);
      if (s.seqs == 0) continue;
      const auto kind =
          prompt_tokens > 0 ? sim::AllToAllKind::kThroughput : sim::AllToAllKind::kLowLatency;
      const sim::StepCost c = g.model->Step(s, kind, mtp > 0 && pool_.role != PoolRole::kPrefill);
      if (c.seconds > seconds) {
        seconds = c.seconds;
        exposed = std::max(0.0, c.seconds - c.compute_seconds);
      }
      busy += c.busy_seconds;
      compute += c.compute_seconds;
      comm += c.comm_seconds;
      running += s.seqs;
      stats_.max_step_prefill_tokens = std::max(stats_.max_step_prefill_tokens, prompt_tokens);
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
  /// After a step: prompts it finished sampled their first token, decoding sequences keep
  /// `gain()` tokens each; requests done with this pool leave it: from a prefill pool when
  /// prefilled (their KV held until Release), else when their last token is sampled (their
  /// KV freed).
  template <typename Gain>
  Leaving Complete(Gain gain) {
    Leaving out;
    for (Group& g : groups_) {
      std::vector<Active> still;
      for (Active& a : g.running) {
        const ServingRequest& r = reqs_[static_cast<size_t>(a.index)];
        if (a.prefilling) {
          a.prefilled += a.step_tokens;
          if (a.prefilled >= r.prompt_len) {
            a.generated = 1;
            out.prefilled.push_back(a.index);
          }
        } else if (a.step_tokens > 0) {
          a.generated += gain();
        }
        const bool leaves = pool_.role == PoolRole::kPrefill ? a.prefilled >= r.prompt_len
                                                             : a.generated >= r.output_len;
        if (!leaves) {
          still.push_back(a);
          continue;
        }
        if (pool_.role != PoolRole::kPrefill) {
          g.kv_used -= Tokens(a.index);
          out.finished.push_back(a.index);
        }
      }
      g.running = std::move(still);
    }
    return out;
  }
  const ServingPoolStats& stats() const { return stats_; }

 private:
  /// A group's step: every decoding sequence verifies 1 + mtp tokens after its cache; prompts
  /// are prefilled in FIFO order within the chunk budget.
  StepSummary Build(Group* g, int mtp, int64_t* prompt_tokens) const {
    StepSummary s;
    int64_t budget = std::max<int64_t>(1, pool_.prefill_chunk);
    for (Active& a : g->running) {
      const ServingRequest& r = reqs_[static_cast<size_t>(a.index)];
      a.prefilling = a.prefilled < r.prompt_len;
      if (a.prefilling) {
        a.step_tokens = std::min(budget, r.prompt_len - a.prefilled);
        if (a.step_tokens <= 0) {
          a.step_tokens = 0;
          a.prefilling = false;
          continue;
        }
        budget -= a.step_tokens;
        *prompt_tokens += a.step_tokens;
        AddSequence(static_cast<double>(a.step_tokens), static_cast<double>(a.prefilled), &s);
      } else {
        a.step_tokens = 1 + mtp;
        // The cache holds the prompt and every generated token but the last one fed back.
        const int64_t past = r.prompt_len + a.generated - 1;
        AddSequence(1.0 + mtp, static_cast<double>(past), &s);
      }
    }
    return s;
  }

  const ServingPool& pool_;
  const std::vector<ServingRequest>& reqs_;
  std::vector<Group> groups_;
  std::vector<double> ready_;      ///< per request
  std::vector<int64_t> group_of_;  ///< per request, its group here
  int64_t next_ = 0;
  ServingPoolStats stats_;
};

Status CheckConfig(const PoolServingConfig& cfg, const std::vector<ServingRequest>& reqs) {
  const size_t n = cfg.pools.size();
  const bool split = n == 2 && cfg.pools[0].role == PoolRole::kPrefill &&
                     cfg.pools[1].role == PoolRole::kDecode && cfg.transfer_s;
  if (!(n == 1 && cfg.pools[0].role == PoolRole::kMixed) && !split) {
    return Status::Internal("pool serving takes one mixed pool or a prefill and a decode pool");
  }
  for (const ServingRequest& r : reqs) {
    for (const ServingPool& p : cfg.pools) {
      const int64_t need =
          p.role == PoolRole::kPrefill ? r.prompt_len + 1 : r.prompt_len + r.output_len;
      if (need > p.kv_tokens) {
        return Status::InvalidInput("a request of " + std::to_string(need) +
                                    " tokens needs more KV cache than a " + PoolRoleName(p.role) +
                                    " rank holds (" + std::to_string(p.kv_tokens) +
                                    " tokens after its weights)");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Status SimulatePoolServing(const PoolServingConfig& cfg, std::vector<ServingRequest>* requests,
                           PoolServingResult* out) {
  std::vector<ServingRequest>& reqs = *requests;
  const int64_t n = static_cast<int64_t>(reqs.size());
  CB_RETURN_IF_ERROR(CheckConfig(cfg, reqs));
  *out = PoolServingResult{};
  out->outcomes.assign(reqs.size(), RequestOutcome{});
  std::vector<std::unique_ptr<PoolSim>> pools;
  for (const ServingPool& p : cfg.pools) {
    pools.push_back(std::make_unique<PoolSim>(p, reqs));
    CB_RETURN_IF_ERROR(pools.back()->MakeModels());
  }
  PoolSim& first = *pools.front();
  std::vector<double> clock(pools.size(), 0.0);
  std::mt19937_64 rng(cfg.seed * 0x9e3779b97f4a7c15ULL + 29);
  std::uniform_real_distribution<double> u(0, 1);
  auto gain = [&] {  // tokens a sequence keeps from one verify step
    int64_t kept = 1;
    for (int d = 0; d < cfg.mtp && u(rng) < cfg.mtp_acceptance; ++d) ++kept;
    return kept;
  };
  using Ready = std::pair<double, int64_t>;  // a KV cache arriving at the decode pool
  std::priority_queue<Ready, std::vector<Ready>, std::greater<>> transfers;
  // The same transfers as the prefill pool sees them: its copy of the KV is freed on arrival.
  std::priority_queue<Ready, std::vector<Ready>, std::greater<>> releases;
  int64_t issued = 0, done = 0;
  auto issue = [&](double at) {
    reqs[static_cast<size_t>(issued)].arrival_s = at;
    first.Arrive(issued++, at);
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
    // The pool whose next step starts first runs it.
    std::vector<double> next(pools.size());
    for (size_t p = 0; p < pools.size(); ++p) next[p] = pools[p]->NextStart(clock[p]);
    if (cfg.concurrency == 0 && issued < n) {
      next[0] = std::min(next[0], std::max(clock[0], reqs[static_cast<size_t>(issued)].arrival_s));
    }
    if (pools.size() == 2 && !transfers.empty()) {
      next[1] = std::min(next[1], std::max(clock[1], transfers.top().first));
    }
    const size_t p = static_cast<size_t>(std::min_element(next.begin(), next.end()) - next.begin());
    if (next[p] == kNever) {
      return Status::Internal("pool serving stalled with " + std::to_string(n - done) +
                              " requests unfinished");
    }
    PoolSim& pool = *pools[p];
    double& now = clock[p];
    now = next[p];
    if (p == 0) {
      while (cfg.concurrency == 0 && issued < n &&
             reqs[static_cast<size_t>(issued)].arrival_s <= now) {
        first.Arrive(issued, reqs[static_cast<size_t>(issued)].arrival_s);
        ++issued;
      }
      while (!releases.empty() && releases.top().first <= now) {
        first.Release(releases.top().second);
        releases.pop();
      }
    } else {
      while (!transfers.empty() && transfers.top().first <= now) {
        pool.Arrive(transfers.top().second, transfers.top().first);
        transfers.pop();
      }
    }
    pool.Admit(now, &out->outcomes);
    const double s = pool.Step(cfg.mtp);
    if (s <= 0 && p == 0 && !releases.empty()) {
      now = std::max(now, releases.top().first);  // the queue waits for KV held in transfer
      continue;
    }
    if (s <= 0) {
      return Status::Internal("the " + PoolRoleName(pool.pool().role) +
                              " pool has requests but cannot run them");
    }
    now += s;
    const Leaving left = pool.Complete(gain);
    for (int64_t i : left.prefilled) {
      const ServingRequest& r = reqs[static_cast<size_t>(i)];
      double& first_token = out->outcomes[static_cast<size_t>(i)].first_token_s;
      if (pool.pool().role != PoolRole::kPrefill) {
        first_token = now;
        continue;
      }
      first_token = now + cfg.transfer_s(r.prompt_len);
      releases.push({first_token, i});
      if (r.output_len <= 1) {
        finish(i, first_token);
      } else {
        transfers.push({first_token, i});
      }
    }
    for (int64_t i : left.finished) finish(i, now);
  }
  for (const auto& pool : pools) out->pools.push_back(pool->stats());
  return Status::Ok();
}

}  // namespace cb
