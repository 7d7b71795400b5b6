#include "harness/fault_injection.h"

#include <cmath>
#include <stdexcept>

namespace cb {
namespace {

enum class Fault { kNanLogits, kSkewLogits, kThrow };

class FaultySession final : public Session {
 public:
  FaultySession(std::unique_ptr<Session> inner, Fault fault)
      : inner_(std::move(inner)), fault_(fault) {}
  Status Load(const OpStream& s, const WeightSource& w) override { return inner_->Load(s, w); }
  Status Run(const OpStream& s, OpRange r, StepIO& io) override {
    if (fault_ == Fault::kThrow && io.TotalTokens() == static_cast<int64_t>(io.seqs.size()) &&
        !io.want_logits) {
      throw std::runtime_error("injected fault: this rank throws in its first decode step");
    }
    CB_RETURN_IF_ERROR(inner_->Run(s, r, io));
    if (r.end != s.ops.size() || fault_ == Fault::kThrow) return Status::Ok();
    if (fault_ == Fault::kNanLogits) {
      if (io.want_logits && !io.logits.empty()) io.logits[0] = std::nanf("");
      for (int32_t& t : io.next_tokens) t = -1;
    } else if (io.want_logits) {
      for (float& v : io.logits) v *= 1.5f;
    }
    return Status::Ok();
  }
  Status Synchronize() override { return inner_->Synchronize(); }
  uint64_t AllocatedBytes() const override { return inner_->AllocatedBytes(); }

 private:
  std::unique_ptr<Session> inner_;
  Fault fault_;
};

class FaultyDevice final : public Device {
 public:
  FaultyDevice(std::unique_ptr<Device> inner, Fault fault)
      : inner_(std::move(inner)), fault_(fault) {}
  DeviceProps Props() const override { return inner_->Props(); }
  Support Supports(DType t) const override { return inner_->Supports(t); }
  Status Open(const SessionConfig& c, std::unique_ptr<Session>* out) override {
    std::unique_ptr<Session> s;
    CB_RETURN_IF_ERROR(inner_->Open(c, &s));
    *out = std::make_unique<FaultySession>(std::move(s), fault_);
    return Status::Ok();
  }
  Clock& clock() override { return inner_->clock(); }
  EnergyMeter* energy() override { return inner_->energy(); }

 private:
  std::unique_ptr<Device> inner_;
  Fault fault_;
};

/// Deterministic ceiling samples (see MakeFaultyCeilingProbe).
class FakeCeilingProbe final : public CeilingProbe {
 public:
  explicit FakeCeilingProbe(std::string mode) : mode_(std::move(mode)) {}
  Status Sample(DType, CeilingSample* out) override {
    double mem = 40e9, flops = 400e9;  // ceiling-drift: before the window, then half
    if (mode_ == "ceiling-drift" && calls_ % 2 == 1) mem *= 0.5, flops *= 0.5;
    if (mode_ == "ceiling-low") mem = flops = 1e6;
    if (mode_ == "ceiling-steady") mem = flops = 1e18;
    ++calls_;
    *out = CeilingSample{mem, flops, 0, 0};
    return Status::Ok();
  }
  std::string Method(DType) const override {
    return "injected fault: a fake probe (--inject-fault " + mode_ + ")";
  }
  double CacheBytes() const override { return 0; }

 private:
  std::string mode_;
  int calls_ = 0;
};

}  // namespace

std::unique_ptr<CeilingProbe> MakeFaultyCeilingProbe(const std::string& mode) {
  if (mode != "ceiling-drift" && mode != "ceiling-low" && mode != "ceiling-steady") return nullptr;
  return std::make_unique<FakeCeilingProbe>(mode);
}

Status WrapWithFault(const std::string& mode, int world_rank, std::unique_ptr<Device> inner,
                     std::unique_ptr<Device>* out) {
  Fault fault;
  const std::string throw_prefix = "throw-on-rank:";
  if (mode.rfind(throw_prefix, 0) == 0) {
    const std::string rank = mode.substr(throw_prefix.size());
    if (rank.empty() || rank.size() > 6 ||
        rank.find_first_not_of("0123456789") != std::string::npos) {
      return Status::InvalidInput("--inject-fault '" + mode +
                                  "': expected throw-on-rank:R with R a rank (0 to 999999)");
    }
    if (std::stoi(rank) != world_rank) {
      *out = std::move(inner);
      return Status::Ok();
    }
    fault = Fault::kThrow;
  } else if (mode == "nan-logits") {
    fault = Fault::kNanLogits;
  } else if (mode == "skew-logits") {
    fault = Fault::kSkewLogits;
  } else if (MakeFaultyCeilingProbe(mode) != nullptr) {
    *out = std::move(inner);  // a fault of the ceiling probe, not of the device
    return Status::Ok();
  } else {
    return Status::InvalidInput("--inject-fault '" + mode +
                                "' unknown; allowed values: nan-logits, skew-logits, "
                                "throw-on-rank:R, ceiling-drift, ceiling-low, ceiling-steady");
  }
  *out = std::make_unique<FaultyDevice>(std::move(inner), fault);
  return Status::Ok();
}

}  // namespace cb
