// The registry, device properties, and the session contract every backend keeps: bad steps are
// refused with a Status (never a crash), allocation is reported, unsupported dtypes say why.

#include <gtest/gtest.h>

#include <map>

#include "backends/cpu/host_info.h"
#include "backends/registry.h"
#include "tests/conformance/conformance_util.h"

namespace cb::conformance {
namespace {

TEST(Registry, ListsEveryBackend) {
  const std::vector<BackendInfo> list = ListBackends();
  std::map<std::string, BackendInfo> by_name;
  for (const auto& b : list) by_name[b.name] = b;
  ASSERT_EQ(by_name.size(), 4u);
  EXPECT_TRUE(by_name.at("cpu").available) << by_name.at("cpu").unavailable_reason;
  EXPECT_TRUE(by_name.at("reference").available);
  // cuda: available only when built in and a GPU is found; otherwise it says which it is.
  const BackendInfo& cuda = by_name.at("cuda");
  if (!cuda.available) {
    EXPECT_TRUE(cuda.unavailable_reason.starts_with("built without CUDA") ||
                cuda.unavailable_reason.starts_with("no CUDA device found: "))
        << cuda.unavailable_reason;
  } else {
    EXPECT_TRUE(cuda.unavailable_reason.empty()) << cuda.unavailable_reason;
  }
  EXPECT_TRUE(by_name.at("sim").available);
  for (const auto& b : list) EXPECT_FALSE(b.description.empty()) << b.name;
}

TEST(Registry, OpenDeviceErrors) {
  std::unique_ptr<Device> d;
  Status s = OpenDevice("tpu", &d);
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  for (const char* name : {"'tpu'", "cpu", "cuda", "reference", "sim"}) {
    EXPECT_NE(s.message().find(name), std::string::npos) << s.message();
  }
  s = OpenDevice("cuda", &d);
  for (const BackendInfo& b : ListBackends()) {
    if (b.name != "cuda") continue;
    if (b.available) {
      ASSERT_TRUE(s.ok()) << s.message();
      EXPECT_EQ(d->Props().backend, "cuda");
    } else {
      EXPECT_EQ(s.code(), StatusCode::kUnsupported);
      EXPECT_NE(s.message().find(b.unavailable_reason), std::string::npos) << s.message();
    }
  }
  ASSERT_TRUE(OpenDevice("sim", &d).ok());
  EXPECT_TRUE(d->Props().simulated);
  EXPECT_TRUE(d->clock().simulated());
  EXPECT_EQ(OpenDevice("sim:no-such-device", &d).code(), StatusCode::kInvalidInput);
  ASSERT_TRUE(OpenDevice("reference", &d).ok());
  EXPECT_EQ(d->Props().backend, "reference");
  ASSERT_TRUE(OpenDevice("cpu", &d).ok());
  EXPECT_EQ(d->Props().backend, "cpu");
}

TEST(CpuDevice, Props) {
  auto d = MakeCpuDevice();
  const DeviceProps p = d->Props();
  EXPECT_EQ(p.backend, "cpu");
  EXPECT_EQ(p.kind, "cpu");
  EXPECT_NE(p.name.find(" core"), std::string::npos) << p.name;
  EXPECT_FALSE(p.host.empty());
  EXPECT_GE(p.threads, 1);
  EXPECT_GT(p.mem_bytes, 0u);
  EXPECT_FALSE(p.isa.empty());
  EXPECT_FALSE(p.simulated);
  EXPECT_EQ(d->energy(), nullptr);
  const double t0 = d->clock().NowSeconds();
  EXPECT_GE(d->clock().NowSeconds(), t0);
  EXPECT_FALSE(d->clock().simulated());
}

TEST(CpuDevice, Supports) {
  auto d = MakeCpuDevice();
  EXPECT_TRUE(d->Supports(DType::kF32).supported);
  EXPECT_EQ(d->Supports(DType::kBF16).supported, cpu::DnnlIsaHasBf16());
  const Support f16 = d->Supports(DType::kF16);
  EXPECT_FALSE(f16.supported);
  EXPECT_FALSE(f16.reason.empty());
  std::unique_ptr<Session> s;
  EXPECT_EQ(d->Open(Config(DType::kF16, 1, 8, 8), &s).code(), StatusCode::kUnsupported);
  EXPECT_EQ(d->Open(Config(DType::kF32, 1, 0, 8), &s).code(), StatusCode::kInvalidInput);
}

class SessionContract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    device_ = GetParam() == "cpu" ? MakeCpuDevice() : MakeReferenceDevice();
    ASSERT_TRUE(BuildDenseDecoderStream(TinySpec(true, true), ShardSpec{}, 2, &stream_).ok());
    ASSERT_TRUE(device_->Open(Config(DType::kF32, 2, 12, 8), &session_).ok());
  }
  Status RunAll(StepIO& io) { return session_->Run(stream_, {0, stream_.ops.size()}, io); }

  std::unique_ptr<Device> device_;
  std::unique_ptr<Session> session_;
  OpStream stream_;
};

TEST_P(SessionContract, RefusesBadSteps) {
  StepIO io;
  io.seqs = {{0, 0, 2}};
  io.tokens = {1, 2};
  EXPECT_FALSE(RunAll(io).ok()) << "Run before Load";
  ASSERT_TRUE(session_->Load(stream_, WeightSource(7)).ok());
  ASSERT_TRUE(RunAll(io).ok());
  EXPECT_EQ(io.next_tokens.size(), 1u);

  StepIO too_long;
  too_long.seqs = {{0, 10, 3}};
  too_long.tokens = {1, 2, 3};
  EXPECT_EQ(RunAll(too_long).code(), StatusCode::kResourceExhausted) << "past max_context";
  StepIO bad_token;
  bad_token.seqs = {{0, 0, 1}};
  bad_token.tokens = {256};
  EXPECT_EQ(RunAll(bad_token).code(), StatusCode::kInvalidInput);
  StepIO bad_slot;
  bad_slot.seqs = {{2, 0, 1}};
  bad_slot.tokens = {1};
  EXPECT_EQ(RunAll(bad_slot).code(), StatusCode::kInvalidInput);
  StepIO twice;
  twice.seqs = {{0, 0, 1}, {0, 0, 1}};
  twice.tokens = {1, 2};
  EXPECT_EQ(RunAll(twice).code(), StatusCode::kInvalidInput);
  StepIO wrong_count;
  wrong_count.seqs = {{0, 0, 2}};
  wrong_count.tokens = {1};
  EXPECT_EQ(RunAll(wrong_count).code(), StatusCode::kInvalidInput);
  StepIO gap;  // slot 1 holds nothing yet
  gap.seqs = {{1, 4, 1}};
  gap.tokens = {1};
  EXPECT_EQ(RunAll(gap).code(), StatusCode::kInvalidInput);
  EXPECT_EQ(session_->Run(stream_, {3, stream_.ops.size() + 1}, io).code(),
            StatusCode::kInvalidInput);
}

TEST_P(SessionContract, ReportsAllocation) {
  ASSERT_TRUE(session_->Load(stream_, WeightSource(7)).ok());
  uint64_t weights = 0;  // the tied LM head may share the embedding's storage
  for (const WeightDesc& w : stream_.weights) {
    if (w.name != "lm_head") weights += w.Elements() * sizeof(float);
  }
  EXPECT_GE(session_->AllocatedBytes(), weights);
}

INSTANTIATE_TEST_SUITE_P(Backends, SessionContract, ::testing::Values("cpu", "reference"));

TEST(CpuSession, AllocatesKvCacheAndBuffersUpFront) {
  OpStream stream;
  ASSERT_TRUE(BuildDenseDecoderStream(TinySpec(false, false), ShardSpec{}, 2, &stream).ok());
  auto d = MakeCpuDevice();
  std::unique_ptr<Session> small, large;
  ASSERT_TRUE(d->Open(Config(DType::kF32, 1, 16, 16), &small).ok());
  ASSERT_TRUE(d->Open(Config(DType::kF32, 4, 64, 16), &large).ok());
  ASSERT_TRUE(small->Load(stream, WeightSource(3)).ok());
  ASSERT_TRUE(large->Load(stream, WeightSource(3)).ok());
  // K and V: 2 layers x 2 KV heads x 16 dims x 4 bytes x 2 per slot-position.
  const uint64_t kv_per_position = 2 * 2 * 16 * 4 * 2;
  EXPECT_GE(large->AllocatedBytes() - small->AllocatedBytes(), (4 * 64 - 16) * kv_per_position);
}

}  // namespace
}  // namespace cb::conformance
