// Continuous batching on the reference backend (fp32, the tiny model): every request
// completes, KV pages and slots are reclaimed, no step exceeds the prefill budget, outputs
// equal one-shot generation of the same prompt, TTFT counts queueing from the scheduled
// arrival, closed loop issues on completion, and a simulated clock skips idle time.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "backends/registry.h"
#include "harness/scenarios/serving_pass.h"
#include "harness/scenarios/serving_runner.h"
#include "workloads/model_spec.h"
#include "workloads/weights.h"

namespace cb {
namespace {

struct Loaded {
  std::unique_ptr<Device> device;
  std::unique_ptr<Session> session;
  OpStream stream;
};

void Open(const std::string& backend, int64_t slots, int64_t context, int64_t step_tokens,
          Loaded* s) {
  ModelSpec m;
  ASSERT_TRUE(LoadModelSpec("tiny", &m).ok());
  ASSERT_TRUE(
      BuildDenseDecoderStream(m, ShardSpec{}, static_cast<int>(m.num_layers), &s->stream).ok());
  ASSERT_TRUE(OpenDevice(backend, &s->device).ok());
  SessionConfig c;
  c.dtype = DType::kF32;
  c.max_sequences = slots;
  c.max_context = context;
  c.max_step_tokens = step_tokens;
  ASSERT_TRUE(s->device->Open(c, &s->session).ok());
  ASSERT_TRUE(s->session->Load(s->stream, WeightSource(5)).ok());
}

std::vector<ServingRequest> Requests(int n, uint64_t seed, int64_t vocab) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> plen(3, 21), olen(1, 6);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(vocab - 1));
  std::vector<ServingRequest> reqs(n);
  for (auto& r : reqs) {
    r.prompt_len = plen(rng);
    r.output_len = olen(rng);
    for (int64_t p = 0; p < r.prompt_len; ++p) r.prompt.push_back(tok(rng));
  }
  return reqs;
}

/// Greedy generation of one request alone: the whole prompt in one step, then decode.
std::vector<int32_t> OneShot(Loaded& s, const ServingRequest& r) {
  StepIO io;
  io.seqs = {{0, 0, r.prompt_len}};
  io.tokens = r.prompt;
  std::vector<int32_t> out;
  EXPECT_TRUE(s.session->Run(s.stream, {0, s.stream.ops.size()}, io).ok());
  out.push_back(io.next_tokens[0]);
  for (int64_t g = 1; g < r.output_len; ++g) {
    io.seqs = {{0, r.prompt_len + g - 1, 1}};
    io.tokens = {out.back()};
    EXPECT_TRUE(s.session->Run(s.stream, {0, s.stream.ops.size()}, io).ok());
    out.push_back(io.next_tokens[0]);
  }
  return out;
}

TEST(ContinuousBatching, InvariantsAndOutputsEqualOneShotGeneration) {
  Loaded s;
  Open("reference", 3, 32, 8 + 3, &s);
  if (HasFatalFailure()) return;
  const int64_t vocab = s.stream.dims.vocab_full;
  std::vector<ServingRequest> reqs = Requests(14, 21, vocab);
  for (size_t i = 0; i < reqs.size(); ++i) reqs[i].arrival_s = 0.0005 * static_cast<double>(i);
  PassConfig pc;
  pc.slots = 3;
  pc.max_prefill_tokens = 8;  // prompts up to 21 tokens: chunked
  pc.kv_page_tokens = 8;
  pc.kv_pages = 7;  // 56 tokens: fewer than 3 long requests, so pages limit admission too
  pc.vocab = vocab;
  PassResult res;
  const Status st = RunServingPass(*s.session, s.device->clock(), s.stream, pc, &reqs, &res);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(res.tokens_valid);
  EXPECT_LE(res.max_step_prefill_tokens, 8);
  EXPECT_EQ(res.max_step_prefill_tokens, 8);  // the budget was used in full at least once
  EXPECT_EQ(res.kv_pages_free_at_end, 7);
  EXPECT_EQ(res.slots_free_at_end, 3);
  EXPECT_LE(res.kv_pages_peak, 7);
  EXPECT_GT(res.sum_running / static_cast<double>(res.steps), 1.0);  // requests shared steps

  Loaded alone;
  Open("reference", 1, 32, 32, &alone);
  if (HasFatalFailure()) return;
  for (size_t i = 0; i < reqs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    const RequestOutcome& o = res.outcomes[i];
    ASSERT_EQ(static_cast<int64_t>(o.tokens.size()), reqs[i].output_len);
    EXPECT_GE(o.admitted_s, reqs[i].arrival_s);
    EXPECT_GT(o.first_token_s, o.admitted_s);
    EXPECT_GE(o.finish_s, o.first_token_s);
    EXPECT_EQ(o.tokens, OneShot(alone, reqs[i]));
  }
}

TEST(ContinuousBatching, TtftIsTimedFromTheScheduledArrivalAndShowsQueueing) {
  Loaded s;
  Open("reference", 1, 32, 16 + 1, &s);
  if (HasFatalFailure()) return;
  // Eight requests all arriving at once, one slot: each waits for the one before.
  std::vector<ServingRequest> reqs = Requests(8, 4, s.stream.dims.vocab_full);
  for (auto& r : reqs) {
    r.arrival_s = 0;
    r.output_len = 4;
  }
  PassConfig pc;
  pc.slots = 1;
  pc.max_prefill_tokens = 16;
  pc.kv_pages = 4;
  pc.kv_page_tokens = 16;
  pc.vocab = s.stream.dims.vocab_full;
  PassResult res;
  ASSERT_TRUE(RunServingPass(*s.session, s.device->clock(), s.stream, pc, &reqs, &res).ok());
  for (size_t i = 1; i < reqs.size(); ++i) {
    const RequestOutcome& prev = res.outcomes[i - 1];
    const RequestOutcome& o = res.outcomes[i];
    EXPECT_GE(o.admitted_s, prev.finish_s);  // queued until the slot was free
    const double ttft = o.first_token_s - reqs[i].arrival_s;
    EXPECT_GT(ttft, prev.finish_s - reqs[i].arrival_s);  // the wait is part of TTFT
    EXPECT_GT(ttft, o.first_token_s - o.admitted_s);     // more than service time alone
  }
}

TEST(ContinuousBatching, ClosedLoopIssuesTheNextRequestWhenOneCompletes) {
  Loaded s;
  Open("reference", 2, 32, 16 + 2, &s);
  if (HasFatalFailure()) return;
  std::vector<ServingRequest> reqs = Requests(6, 8, s.stream.dims.vocab_full);
  PassConfig pc;
  pc.slots = 2;
  pc.max_prefill_tokens = 16;
  pc.kv_pages = 8;
  pc.kv_page_tokens = 8;
  pc.concurrency = 2;
  pc.vocab = s.stream.dims.vocab_full;
  PassResult res;
  ASSERT_TRUE(RunServingPass(*s.session, s.device->clock(), s.stream, pc, &reqs, &res).ok());
  EXPECT_EQ(reqs[0].arrival_s, 0);
  EXPECT_EQ(reqs[1].arrival_s, 0);
  for (size_t i = 2; i < reqs.size(); ++i) {
    bool at_a_completion = false;
    for (size_t j = 0; j < i; ++j) at_a_completion |= res.outcomes[j].finish_s == reqs[i].arrival_s;
    EXPECT_TRUE(at_a_completion) << "request " << i;
  }
}

TEST(ContinuousBatching, SimulatedClockMovesOverIdleTimeInsteadOfSleeping) {
  WorkloadSpec w;
  ASSERT_TRUE(LoadModelSpec("tiny", &w.model).ok());
  w.model_ref = "tiny";
  w.backend = "sim";
  w.scenario = "server";
  w.dtype = DType::kF32;
  w.batch = 4;
  w.prompt_len = 16;
  w.gen_len = 4;
  w.verify = false;
  w.serving.rate = 0.5;  // one request every 2 s of modelled time
  w.serving.requests = 20;
  w.serving.warmup_requests = 0;
  std::unique_ptr<Device> dev;
  ASSERT_TRUE(OpenDevice("sim", &dev).ok());
  RunRecord rec;
  RunnerOptions opts;
  opts.quiet = true;
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(RunServing(w, *dev, opts, &rec).ok());
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(rec.status, "ok") << rec.status_message;
  ASSERT_TRUE(rec.serving.has_value());
  EXPECT_GT(rec.serving->duration_s, 20.0);  // ~40 s of modelled arrivals
  EXPECT_LT(wall, 10.0);                     // not slept through
  EXPECT_EQ(rec.FindMetric("ttft_seconds")->how, Provenance::kModelled);
  for (const RequestSample& r : rec.serving->requests) EXPECT_GE(r.first_token_s, r.arrival_s);
}

}  // namespace
}  // namespace cb
