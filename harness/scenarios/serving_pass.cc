#include "harness/scenarios/serving_pass.h"

#include <algorithm>

#include "harness/cancel.h"

namespace cb {

Status RunServingPass(Session& session, Clock& clock, const OpStream& stream, const PassConfig& cfg,
                      std::vector<ServingRequest>* requests, PassResult* out) {
  std::vector<ServingRequest>& reqs = *requests;
  const int64_t n = static_cast<int64_t>(reqs.size());
  KvPageAllocator kv(cfg.kv_pages, cfg.kv_page_tokens);
  for (const ServingRequest& r : reqs) {
    if (kv.PagesFor(r.prompt_len + r.output_len) > kv.total()) {
      return Status::InvalidInput("a request of " + std::to_string(r.prompt_len + r.output_len) +
                                  " tokens needs more KV pages than the pool has (" +
                                  std::to_string(kv.total()) + " of " +
                                  std::to_string(kv.page_tokens()) + " tokens)");
    }
  }
  ContinuousBatcher batcher(&reqs, cfg.slots, cfg.max_prefill_tokens, &kv);
  *out = PassResult{};
  out->outcomes.assign(reqs.size(), RequestOutcome{});
  out->kv_pages_total = kv.total();

  CB_RETURN_IF_ERROR(session.Synchronize());
  const double t0 = clock.NowSeconds();
  auto now = [&] { return clock.NowSeconds() - t0; };
  int64_t issued = 0, done = 0;
  if (cfg.concurrency > 0) {
    for (; issued < std::min(n, cfg.concurrency); ++issued) {
      reqs[static_cast<size_t>(issued)].arrival_s = 0;
      batcher.Arrive(issued);
    }
  }
  std::vector<int64_t> finished;
  // After waiting for an arrival, that arrival counts as reached even if t0 + a - t0 rounds
  // to just below a.
  double reached = 0;
  while (done < n) {
    if (CancelRequested()) return Status::Cancelled("interrupted");
    const double t = std::max(now(), reached);
    if (cfg.concurrency == 0) {
      while (issued < n && reqs[static_cast<size_t>(issued)].arrival_s <= t) {
        batcher.Arrive(issued++);
      }
    }
    batcher.Admit(t, &out->outcomes);
    StepIO io;
    if (!batcher.BuildStep(&io)) {
      if (cfg.concurrency == 0 && issued < n && batcher.waiting() == 0) {
        reached = reqs[static_cast<size_t>(issued)].arrival_s;
        // In slices, so Ctrl-C ends a long wait for the next arrival within a tenth of a second.
        for (double t_now = clock.NowSeconds(); t_now < t0 + reached; t_now = clock.NowSeconds()) {
          if (CancelRequested()) return Status::Cancelled("interrupted");
          clock.WaitUntil(std::min(t0 + reached, t_now + 0.1));
        }
        continue;
      }
      return Status::Internal("serving pass stalled: " + std::to_string(batcher.waiting()) +
                              " requests wait but none can be admitted");
    }
    const double b0 = clock.NowSeconds();
    CB_RETURN_IF_ERROR(session.Run(stream, {0, stream.ops.size()}, io));
    CB_RETURN_IF_ERROR(session.Synchronize());
    const double t_end = now();
    out->backend_s += clock.NowSeconds() - b0;
    ++out->steps;
    out->sum_running += static_cast<double>(io.seqs.size());
    out->max_step_prefill_tokens =
        std::max(out->max_step_prefill_tokens, batcher.last_step_prefill_tokens());
    if (io.next_tokens.size() != io.seqs.size() ||
        std::any_of(io.next_tokens.begin(), io.next_tokens.end(),
                    [&](int32_t tok) { return tok < 0 || tok >= cfg.vocab; })) {
      out->tokens_valid = false;
      return Status::Ok();
    }
    finished.clear();
    batcher.Complete(io, t_end, &out->outcomes, &finished);
    done += static_cast<int64_t>(finished.size());
    if (cfg.concurrency > 0) {
      for (size_t f = 0; f < finished.size() && issued < n; ++f, ++issued) {
        reqs[static_cast<size_t>(issued)].arrival_s = t_end;
        batcher.Arrive(issued);
      }
    }
  }
  out->kv_pages_peak = kv.peak_used();
  out->kv_pages_free_at_end = kv.free_pages();
  out->slots_free_at_end = batcher.free_slots();
  return Status::Ok();
}

}  // namespace cb
