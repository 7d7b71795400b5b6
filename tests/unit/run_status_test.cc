// How the offline runner labels a run whose backend reports an operation unsupported: before
// anything is measured (opening a session, loading) the combination is skipped; once the
// measured window has started it is a failure, never a quiet skip.
#include <gtest/gtest.h>

#include "backends/sim/sim_device.h"
#include "harness/runner.h"
#include "tests/unit/sim_testing.h"

namespace cb {
namespace {

/// A simulated device whose sessions answer kUnsupported at one point: at Open, at Load, or
/// from the `fail_run`-th call of Run on (1-based; 0: never).
class RefusingDevice final : public Device {
 public:
  enum class At { kOpen, kLoad, kRun };
  RefusingDevice(std::unique_ptr<Device> inner, At at, int fail_run)
      : inner_(std::move(inner)), at_(at), fail_run_(fail_run) {}
  DeviceProps Props() const override { return inner_->Props(); }
  Support Supports(DType dtype) const override { return inner_->Supports(dtype); }
  Clock& clock() override { return inner_->clock(); }
  EnergyMeter* energy() override { return inner_->energy(); }
  Status Open(const SessionConfig& config, std::unique_ptr<Session>* out) override {
    if (at_ == At::kOpen) return Status::Unsupported("no such session here");
    std::unique_ptr<Session> s;
    CB_RETURN_IF_ERROR(inner_->Open(config, &s));
    *out = std::make_unique<Refusing>(std::move(s), at_, fail_run_);
    return Status::Ok();
  }

 private:
  class Refusing final : public Session {
   public:
    Refusing(std::unique_ptr<Session> inner, At at, int fail_run)
        : inner_(std::move(inner)), at_(at), fail_run_(fail_run) {}
    Status Load(const OpStream& stream, const WeightSource& weights) override {
      if (at_ == At::kLoad) return Status::Unsupported("cannot hold these weights");
      return inner_->Load(stream, weights);
    }
    Status Run(const OpStream& stream, OpRange range, StepIO& io) override {
      if (at_ == At::kRun && ++runs_ >= fail_run_) return Status::Unsupported("kernel missing");
      return inner_->Run(stream, range, io);
    }
    Status Synchronize() override { return inner_->Synchronize(); }
    uint64_t AllocatedBytes() const override { return inner_->AllocatedBytes(); }

   private:
    std::unique_ptr<Session> inner_;
    At at_;
    int fail_run_, runs_ = 0;
  };
  std::unique_ptr<Device> inner_;
  At at_;
  int fail_run_;
};

RunRecord RunOn(RefusingDevice::At at, int fail_run) {
  std::unique_ptr<Device> sim;
  EXPECT_TRUE(sim::MakeSimDevice("sim:nvidia-h100-sxm", "", &sim).ok());
  RefusingDevice device(std::move(sim), at, fail_run);
  WorkloadSpec w;
  EXPECT_TRUE(LoadModelSpec("tiny", &w.model).ok());
  w.backend = "sim:nvidia-h100-sxm";
  w.batch = 2;
  w.prompt_len = 16;
  w.gen_len = 4;
  w.repetitions = 1;
  w.warmup = 0;
  w.verify = false;
  return testing::RunOfflineAlone(w, device);
}

TEST(RunStatus, UnsupportedBeforeTheWindowIsSkipped) {
  for (RefusingDevice::At at : {RefusingDevice::At::kOpen, RefusingDevice::At::kLoad}) {
    const RunRecord rec = RunOn(at, 0);
    EXPECT_EQ(rec.status, "skipped") << rec.status_message;
  }
}

TEST(RunStatus, UnsupportedInsideTheWindowIsAFailure) {
  // The first Run is the prefill, the third a decode step.
  for (int fail_run : {1, 3}) {
    const RunRecord rec = RunOn(RefusingDevice::At::kRun, fail_run);
    EXPECT_EQ(rec.status, "failed") << fail_run;
    EXPECT_NE(rec.status_message.find("kernel missing"), std::string::npos) << rec.status_message;
  }
}

TEST(RunStatus, ARunThatNeverRefusesIsOk) {
  const RunRecord rec = RunOn(RefusingDevice::At::kRun, 1000);
  EXPECT_EQ(rec.status, "ok") << rec.status_message;
}

}  // namespace
}  // namespace cb
