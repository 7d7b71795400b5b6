// Serving on simulated pools (harness/deployment/pool_serving.h): a request's time through a
// prefill and a decode pool by hand, multi-token prediction's steps, queueing, the closed
// loop's bound on requests in flight, round-robin groups, agreement with the offline model,
// and a mixed pool's chunked prefill beside its decodes.
#include "harness/deployment/pool_serving.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "backends/sim/sim_device.h"
#include "harness/deployment/sim_offline.h"
#include "harness/deployment/sim_target.h"
#include "tests/unit/sim_testing.h"

namespace cb {
namespace {

using sim::AllToAllKind;
using sim::StepModel;

using testing::Catalog;

/// A small MoE model on expert-parallel H100 pools of `devices` (one rank per attention group).
std::unique_ptr<StepModel> Pool(int devices, PoolRole role, int mtp = 0) {
  ModelSpec m;
  EXPECT_TRUE(LoadModelSpec("tiny-moe-gqa", &m).ok());
  sim::DeviceModel d;
  EXPECT_TRUE(sim::LoadDeviceModel(Catalog(), "nvidia-h100-sxm", &d).ok());
  sim::Topology t;
  EXPECT_TRUE(sim::TopologyFor(*Catalog().Find("nvidia-h100-sxm"), devices, &t).ok());
  sim::StepModelConfig c;
  c.pool = PoolLayout{role, devices, 1, devices};
  c.mtp = mtp;
  std::unique_ptr<StepModel> out;
  const Status s = StepModel::Create(d, t, m, c, &out);
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

constexpr double kTransfer = 0.01;

PoolServingConfig Config(const StepModel& prefill, const StepModel& decode, int prefill_groups = 1,
                         int decode_groups = 1) {
  PoolServingConfig c;
  c.pools = {ServingPool{PoolRole::kPrefill, &prefill, prefill_groups, 64, 1 << 20, 512},
             ServingPool{PoolRole::kDecode, &decode, decode_groups, 64, 1 << 20, 0}};
  c.transfer_s = [](int64_t) { return kTransfer; };
  return c;
}

std::vector<ServingRequest> Requests(int n, int64_t prompt, int64_t output, double gap = 0) {
  std::vector<ServingRequest> r(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    r[static_cast<size_t>(i)].prompt_len = prompt;
    r[static_cast<size_t>(i)].output_len = output;
    r[static_cast<size_t>(i)].arrival_s = gap * i;
  }
  return r;
}

double PrefillStep(const StepModel& m, double prompt) {
  return m
      .Step(StepSummary{prompt, 1, prompt * (prompt + 1) / 2, prompt}, AllToAllKind::kThroughput)
      .seconds;
}
double DecodeStep(const StepModel& m, double seqs, double past) {
  return m
      .Step(StepSummary{seqs, seqs, seqs * (past + 1), seqs * (past + 1)},
            AllToAllKind::kLowLatency)
      .seconds;
}

TEST(PoolServing, OneRequestCrossesBothPoolsInOrder) {
  const auto p = Pool(4, PoolRole::kPrefill), d = Pool(4, PoolRole::kDecode);
  std::vector<ServingRequest> reqs = Requests(1, 300, 5);
  reqs[0].arrival_s = 2.0;
  PoolServingResult r;
  ASSERT_TRUE(SimulatePoolServing(Config(*p, *d), &reqs, &r).ok());
  // Prefill in one chunk from its arrival, then the transfer: the first token.
  const double first = 2.0 + PrefillStep(*p, 300) + kTransfer;
  EXPECT_NEAR(r.outcomes[0].admitted_s, 2.0, 1e-12);
  EXPECT_NEAR(r.outcomes[0].first_token_s, first, 1e-12);
  // Four more tokens, one per decode step, each attending over the cache so far.
  double finish = first;
  for (int k = 1; k < 5; ++k) finish += DecodeStep(*d, 1, 300 + k - 1);
  EXPECT_NEAR(r.outcomes[0].finish_s, finish, 1e-12);
  EXPECT_EQ(r.pools[1].steps, 4);
  EXPECT_EQ(r.pools[0].steps, 1);
  EXPECT_NEAR(r.end_s, finish, 1e-12);
}

TEST(PoolServing, LongPromptsArePrefilledInChunks) {
  const auto p = Pool(4, PoolRole::kPrefill), d = Pool(4, PoolRole::kDecode);
  std::vector<ServingRequest> reqs = Requests(1, 1200, 2);  // chunks of 512: 3 steps
  PoolServingResult r;
  ASSERT_TRUE(SimulatePoolServing(Config(*p, *d), &reqs, &r).ok());
  EXPECT_EQ(r.pools[0].steps, 3);
  EXPECT_EQ(r.pools[0].max_step_prefill_tokens, 512);
  EXPECT_GT(r.outcomes[0].first_token_s, PrefillStep(*p, 1200) * 0.99);
}

TEST(PoolServing, MtpStepsFollowTheAcceptance) {
  const auto p = Pool(4, PoolRole::kPrefill), d = Pool(4, PoolRole::kDecode, 1);
  for (const auto& [acceptance, steps] : {std::pair{1.0, 50}, std::pair{0.0, 99}}) {
    PoolServingConfig c = Config(*p, *d);
    c.mtp = 1;
    c.mtp_acceptance = acceptance;
    std::vector<ServingRequest> reqs = Requests(1, 64, 100);
    PoolServingResult r;
    ASSERT_TRUE(SimulatePoolServing(c, &reqs, &r).ok());
    // The first token comes from prefill; 99 more at 2 (every draft kept) or 1 per step.
    EXPECT_EQ(r.pools[1].steps, steps) << acceptance;
  }
  // At 0.5 the mean is 1.5 tokens a step: about 66 steps for 99 tokens.
  PoolServingConfig c = Config(*p, *d);
  c.mtp = 1;
  c.mtp_acceptance = 0.5;
  std::vector<ServingRequest> reqs = Requests(20, 64, 100);
  PoolServingResult r;
  ASSERT_TRUE(SimulatePoolServing(c, &reqs, &r).ok());
  EXPECT_NEAR(static_cast<double>(r.pools[1].steps), 99 / 1.5, 10);
}

TEST(PoolServing, LightLoadQueuesNowhereAndOverloadQueuesFifo) {
  const auto p = Pool(4, PoolRole::kPrefill), d = Pool(4, PoolRole::kDecode);
  const double alone = PrefillStep(*p, 256) + kTransfer;
  std::vector<ServingRequest> light = Requests(10, 256, 4, 10.0);  // one every 10 s
  PoolServingResult r;
  ASSERT_TRUE(SimulatePoolServing(Config(*p, *d), &light, &r).ok());
  for (size_t i = 0; i < light.size(); ++i) {
    EXPECT_NEAR(r.outcomes[i].first_token_s - light[i].arrival_s, alone, 1e-9) << i;
  }
  // Twenty at once, two prompts per 512-token chunk: the first tokens come in pairs, in order.
  std::vector<ServingRequest> burst = Requests(20, 256, 4);
  ASSERT_TRUE(SimulatePoolServing(Config(*p, *d), &burst, &r).ok());
  EXPECT_EQ(r.pools[0].steps, 10);
  for (size_t i = 2; i < burst.size(); ++i) {
    EXPECT_GT(r.outcomes[i].first_token_s, r.outcomes[i - 2].first_token_s) << i;
  }
  EXPECT_NEAR(r.outcomes[0].first_token_s, r.outcomes[1].first_token_s, 1e-12);
}

TEST(PoolServing, APrefillGroupHoldsTheKvCacheUntilItsTransferCompletes) {
  // Room for one 300-token prompt's KV cache in the prefill group, and a slow transfer: the
  // second prompt waits for the first one's cache to leave, not just for its prefill.
  const auto p = Pool(4, PoolRole::kPrefill), d = Pool(4, PoolRole::kDecode);
  PoolServingConfig c = Config(*p, *d);
  c.pools[0].kv_tokens = 400;
  constexpr double kSlow = 1.0;
  c.transfer_s = [](int64_t) { return kSlow; };
  std::vector<ServingRequest> reqs = Requests(2, 300, 3);
  PoolServingResult r;
  ASSERT_TRUE(SimulatePoolServing(c, &reqs, &r).ok());
  const double prefill = PrefillStep(*p, 300);
  EXPECT_NEAR(r.outcomes[0].first_token_s, prefill + kSlow, 1e-9);
  EXPECT_NEAR(r.outcomes[1].admitted_s, r.outcomes[0].first_token_s, 1e-9);
  EXPECT_NEAR(r.outcomes[1].first_token_s, 2 * (prefill + kSlow), 1e-9);
  EXPECT_EQ(r.pools[0].kv_peak_tokens, 301);
}

TEST(PoolServing, GroupsShareTheTrafficRoundRobin) {
  const auto p = Pool(4, PoolRole::kPrefill), d = Pool(4, PoolRole::kDecode);
  // Two prompts of 512 at once: one group prefills them in two steps, two groups in one.
  std::vector<ServingRequest> reqs = Requests(2, 512, 2);
  PoolServingResult one, two;
  ASSERT_TRUE(SimulatePoolServing(Config(*p, *d, 1, 1), &reqs, &one).ok());
  ASSERT_TRUE(SimulatePoolServing(Config(*p, *d, 2, 2), &reqs, &two).ok());
  EXPECT_EQ(one.pools[0].steps, 2);
  EXPECT_EQ(two.pools[0].steps, 1);
  EXPECT_NEAR(two.outcomes[0].first_token_s, two.outcomes[1].first_token_s, 1e-12);
  EXPECT_GT(one.outcomes[1].first_token_s, two.outcomes[1].first_token_s);
}

TEST(PoolServing, ClosedLoopNeverExceedsItsConcurrency) {
  const auto p = Pool(4, PoolRole::kPrefill), d = Pool(4, PoolRole::kDecode);
  PoolServingConfig c = Config(*p, *d, 2, 3);
  c.concurrency = 5;
  std::vector<ServingRequest> reqs = Requests(60, 200, 12);
  PoolServingResult r;
  ASSERT_TRUE(SimulatePoolServing(c, &reqs, &r).ok());
  int max_in_flight = 0;
  for (const ServingRequest& q : reqs) {
    int in_flight = 0;
    for (size_t i = 0; i < reqs.size(); ++i) {
      in_flight += reqs[i].arrival_s <= q.arrival_s && r.outcomes[i].finish_s > q.arrival_s;
    }
    max_in_flight = std::max(max_in_flight, in_flight);
  }
  EXPECT_EQ(max_in_flight, 5);
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_GE(r.outcomes[i].admitted_s, reqs[i].arrival_s);
    EXPECT_GT(r.outcomes[i].first_token_s, r.outcomes[i].admitted_s);
    EXPECT_GT(r.outcomes[i].finish_s, r.outcomes[i].first_token_s);
  }
}

TEST(PoolServing, AFullBatchDecodesAsTheOfflineModel) {
  // 32 prompts prefilled in one chunk reach the decode group together and run every step as
  // one batch: the steps the offline model takes for 32 sequences at the same contexts.
  const auto p = Pool(4, PoolRole::kPrefill), d = Pool(4, PoolRole::kDecode);
  PoolServingConfig c = Config(*p, *d);
  c.pools[0].prefill_chunk = 32 * 128;
  c.pools[1].slots = 32;
  std::vector<ServingRequest> reqs = Requests(32, 128, 200);
  PoolServingResult r;
  ASSERT_TRUE(SimulatePoolServing(c, &reqs, &r).ok());
  const SimPhase offline = SimulateDecode(*d, 32, 128, 199, 1);
  for (const RequestOutcome& o : r.outcomes) {
    EXPECT_NEAR(o.finish_s - o.first_token_s, offline.seconds, 1e-9 * offline.seconds);
  }
  EXPECT_EQ(r.pools[1].steps, 199);
  EXPECT_NEAR(r.pools[1].sum_running / 199, 32, 1e-9);
}

TEST(PoolServing, AMixedPoolPrefillsBesideItsDecodes) {
  // One request alone on a mixed pool: its prompt in one step (throughput kernels), then one
  // token a step where it is, with no transfer.
  const auto m = Pool(4, PoolRole::kMixed);
  PoolServingConfig c;
  c.pools = {ServingPool{PoolRole::kMixed, m.get(), 1, 8, 1 << 20, 512}};
  std::vector<ServingRequest> reqs = Requests(1, 300, 4);
  PoolServingResult r;
  ASSERT_TRUE(SimulatePoolServing(c, &reqs, &r).ok());
  const double first = PrefillStep(*m, 300);
  EXPECT_NEAR(r.outcomes[0].first_token_s, first, 1e-12);
  double finish = first;
  for (int k = 1; k < 4; ++k) finish += DecodeStep(*m, 1, 300 + k - 1);
  EXPECT_NEAR(r.outcomes[0].finish_s, finish, 1e-12);
  // A second request arriving during the first's prefill is prefilled in the next step, beside
  // the first's first decode.
  std::vector<ServingRequest> two = Requests(2, 300, 20);
  two[1].arrival_s = first - 1e-9;
  ASSERT_TRUE(SimulatePoolServing(c, &two, &r).ok());
  StepSummary mixed;
  AddSequence(1, 300, &mixed);  // the first request's first decode
  AddSequence(300, 0, &mixed);  // the second's whole prompt
  const double step = m->Step(mixed, AllToAllKind::kThroughput).seconds;
  EXPECT_NEAR(r.outcomes[1].first_token_s, first + step, 1e-12);
  EXPECT_EQ(r.pools[0].max_step_prefill_tokens, 300);
}

TEST(PoolServing, MtpOnAMixedPoolKeepsTheAcceptedDrafts) {
  const auto m = Pool(4, PoolRole::kMixed, 1);
  PoolServingConfig c;
  c.pools = {ServingPool{PoolRole::kMixed, m.get(), 1, 8, 1 << 20, 512}};
  c.mtp = 1;
  c.mtp_acceptance = 1.0;
  std::vector<ServingRequest> reqs = Requests(1, 64, 101);
  PoolServingResult r;
  ASSERT_TRUE(SimulatePoolServing(c, &reqs, &r).ok());
  EXPECT_EQ(r.pools[0].steps, 1 + 50);  // the prompt, then 100 tokens at 2 a step
}

TEST(PoolServing, ARequestTooLargeForARankIsBadInput) {
  const auto p = Pool(4, PoolRole::kPrefill), d = Pool(4, PoolRole::kDecode);
  PoolServingConfig c = Config(*p, *d);
  c.pools[1].kv_tokens = 1000;
  std::vector<ServingRequest> reqs = Requests(1, 900, 200);
  PoolServingResult r;
  const Status s = SimulatePoolServing(c, &reqs, &r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find("decode rank"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace cb
