// serve-model's engine (harness/serve_model/serving_engine.h): requests submitted from other
// threads get, token by token, what the serving scenarios' own pass computes for them.
#include "harness/serve_model/serving_engine.h"

#include <gtest/gtest.h>

#include "backends/registry.h"
#include "harness/scenarios/serving_pass.h"
#include "workloads/model_spec.h"
#include "workloads/weights.h"

namespace cb {
namespace {

struct Loaded {
  ModelSpec model;
  OpStream stream;
  std::unique_ptr<Device> device;
  std::unique_ptr<Session> session;
};

void Load(Loaded* l) {
  ASSERT_TRUE(LoadModelSpec("tiny", &l->model).ok());
  ASSERT_TRUE(BuildDenseDecoderStream(l->model, ShardSpec{}, 4, &l->stream).ok());
  ASSERT_TRUE(OpenDevice("reference", &l->device).ok());
  SessionConfig cfg;
  cfg.dtype = DType::kF32;
  cfg.max_sequences = 4;
  cfg.max_context = 64;
  cfg.max_step_tokens = 16 + 4;
  ASSERT_TRUE(l->device->Open(cfg, &l->session).ok());
  ASSERT_TRUE(l->session->Load(l->stream, WeightSource(1)).ok());
}

EngineConfig Config(const Loaded& l) {
  EngineConfig c;
  c.slots = 4;
  c.max_prefill_tokens = 16;
  c.kv_page_tokens = 16;
  c.kv_pages = 4 * 4;
  c.vocab = l.stream.dims.vocab_full;
  c.max_context = 64;
  return c;
}

std::vector<int32_t> Prompt(int64_t seq, int64_t n, int64_t vocab) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(SyntheticToken(5, seq, i, vocab));
  return p;
}

TEST(ServingEngine, StreamsTheGreedyTokensOfTheServingPass) {
  Loaded a;
  Load(&a);
  if (HasFatalFailure()) return;
  const int64_t vocab = a.stream.dims.vocab_full;
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{10, 5}, {20, 3}, {30, 8}};
  ServingEngine engine(*a.session, a.device->clock(), a.stream, Config(a));
  engine.Start();
  std::vector<std::shared_ptr<TokenStream>> streams;
  for (size_t i = 0; i < shapes.size(); ++i) {
    std::shared_ptr<TokenStream> s;
    ASSERT_TRUE(
        engine.Submit(Prompt(static_cast<int64_t>(i), shapes[i].first, vocab), shapes[i].second, &s)
            .ok());
    streams.push_back(s);
  }
  std::vector<std::vector<int32_t>> got(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    while (streams[i]->Next(&got[i], 5.0)) {
    }
    EXPECT_EQ(streams[i]->error(), "");
    EXPECT_EQ(static_cast<int64_t>(got[i].size()), shapes[i].second);
  }
  engine.Stop();
  EXPECT_EQ(engine.served(), 3);

  // The same requests through RunServingPass on a fresh session.
  Loaded b;
  Load(&b);
  std::vector<ServingRequest> reqs;
  for (size_t i = 0; i < shapes.size(); ++i) {
    ServingRequest r;
    r.prompt = Prompt(static_cast<int64_t>(i), shapes[i].first, vocab);
    r.prompt_len = shapes[i].first;
    r.output_len = shapes[i].second;
    reqs.push_back(r);
  }
  PassConfig pc;
  pc.slots = 4;
  pc.max_prefill_tokens = 16;
  pc.kv_pages = 16;
  pc.kv_page_tokens = 16;
  pc.vocab = vocab;
  PassResult res;
  SteadyClock clock;
  ASSERT_TRUE(RunServingPass(*b.session, clock, b.stream, pc, &reqs, &res).ok());
  for (size_t i = 0; i < shapes.size(); ++i) EXPECT_EQ(got[i], res.outcomes[i].tokens) << i;
}

TEST(ServingEngine, RefusesRequestsThatCanNeverRunAndEndsCancelledOnes) {
  Loaded a;
  Load(&a);
  if (HasFatalFailure()) return;
  ServingEngine engine(*a.session, a.device->clock(), a.stream, Config(a));
  engine.Start();
  std::shared_ptr<TokenStream> s;
  EXPECT_EQ(engine.Submit({}, 4, &s).code(), StatusCode::kInvalidInput);
  const Status too_long = engine.Submit(Prompt(0, 60, 512), 8, &s);
  EXPECT_EQ(too_long.code(), StatusCode::kInvalidInput);
  EXPECT_NE(too_long.message().find("maximum context length is 64"), std::string::npos);
  EXPECT_EQ(engine.Submit({100000}, 4, &s).code(), StatusCode::kInvalidInput);
  ASSERT_TRUE(engine.Submit(Prompt(1, 8, 512), 50, &s).ok());
  std::vector<int32_t> got;
  while (got.empty() && s->Next(&got, 5.0)) {
  }
  s->Cancel();
  while (s->Next(&got, 5.0)) {
  }
  EXPECT_LT(got.size(), 50u);
  engine.Stop();
}

}  // namespace
}  // namespace cb
