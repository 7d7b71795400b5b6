#include "backends/sim/sim_device.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "backends/reference/reference_backend.h"
#include "backends/sim/calibration.h"

namespace cb::sim {

// ---- runtime ------------------------------------------------------------------------------

SimRuntime::SimRuntime() { CreateStream(); }

SimRuntime::StreamId SimRuntime::CreateStream() {
  ready_.push_back(now_);
  return static_cast<StreamId>(ready_.size() - 1);
}

void SimRuntime::Launch(StreamId stream, double seconds, double busy) {
  double& r = ready_.at(stream);
  r = std::max(r, now_) + seconds;
  busy_s_ += seconds * std::clamp(busy, 0.0, 1.0);
}

SimRuntime::EventId SimRuntime::RecordEvent(StreamId stream) {
  events_.push_back(std::max(ready_.at(stream), now_));
  return static_cast<EventId>(events_.size() - 1);
}

void SimRuntime::StreamWaitEvent(StreamId stream, EventId event) {
  ready_.at(stream) = std::max(ready_.at(stream), events_.at(event));
}

double SimRuntime::EventElapsed(EventId start, EventId end) const {
  return events_.at(end) - events_.at(start);
}

void SimRuntime::SynchronizeStream(StreamId stream) { now_ = std::max(now_, ready_.at(stream)); }

void SimRuntime::IdleUntil(double t) {
  SynchronizeDevice();
  now_ = std::max(now_, t);
}

void SimRuntime::SynchronizeDevice() {
  for (size_t s = 0; s < ready_.size(); ++s) SynchronizeStream(static_cast<StreamId>(s));
}

// ---- virtual group ------------------------------------------------------------------------

Status VirtualGroup::AllGather(const float* send, size_t count, float* recv) {
  for (int r = 0; r < size_; ++r) std::memcpy(recv + r * count, send, count * sizeof(float));
  return Status::Ok();
}

Status VirtualGroup::Gather(const void* send, size_t bytes, void* recv, int) {
  for (int r = 0; r < size_; ++r) std::memcpy(static_cast<char*>(recv) + r * bytes, send, bytes);
  return Status::Ok();
}

// ---- clock and energy ---------------------------------------------------------------------

class SimDevice::SimClock final : public Clock {
 public:
  explicit SimClock(SimRuntime& rt) : rt_(rt) {}
  double NowSeconds() override { return rt_.now(); }
  bool simulated() const override { return true; }
  void WaitUntil(double t) override { rt_.IdleUntil(t); }

 private:
  SimRuntime& rt_;
};

/// The catalog's power model idle + (TDP - idle) x utilisation, integrated over the device
/// clock; utilisation is the modelled busy share (roofline time / modelled time) of the window.
class SimDevice::SimEnergyMeter final : public EnergyMeter {
 public:
  explicit SimEnergyMeter(SimDevice& d) : d_(d) {}
  std::string source() const override { return "model"; }
  Status Start() override {
    if (!(d_.model_.tdp_w > 0)) {
      return Status::Unsupported("catalog entry " + d_.model_.id +
                                 " has no TDP for the power model");
    }
    t0_ = d_.runtime_.now();
    busy0_ = d_.runtime_.busy_seconds();
    return Status::Ok();
  }
  Status Stop(double* joules) override {
    EnergyReading r;
    CB_RETURN_IF_ERROR(StopReading(&r));
    *joules = r.joules;
    return Status::Ok();
  }
  Status StopReading(EnergyReading* out) override {
    const DeviceModel& m = d_.model_;
    const double window = d_.runtime_.now() - t0_;
    const double util =
        window > 0 ? std::clamp((d_.runtime_.busy_seconds() - busy0_) / window, 0.0, 1.0) : 0.0;
    const double watts = m.idle_w + (m.tdp_w - m.idle_w) * util;
    const int n = d_.devices();
    EnergyReading r;
    r.source = "model";
    r.window_s = window;
    r.valid = window > 0;
    r.joules = watts * window * n;
    r.domains.push_back({"model", m.id, r.joules});
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "simulated (%s): %d x (idle %.4g W + (TDP %.4g W - idle) x utilisation %.3f) "
                  "= %.4g W over %.4g s of simulated time; figures from catalog entry %s",
                  kModelVersion, n, m.idle_w, m.tdp_w, util, watts * n, window, m.id.c_str());
    r.notes.push_back(buf);
    *out = std::move(r);
    return Status::Ok();
  }

 private:
  SimDevice& d_;
  double t0_ = 0, busy0_ = 0;
};

// ---- session ------------------------------------------------------------------------------

namespace {

class SimSession final : public Session {
 public:
  SimSession(SimDevice& dev, const SessionConfig& cfg) : dev_(dev), cfg_(cfg) {
    stream_ = dev_.runtime().CreateStream();
    group_ = dynamic_cast<VirtualGroup*>(cfg.tp_comm);
  }

  Status Load(const OpStream& stream, const WeightSource& weights) override {
    if (stream.shard.tp_size > 1 && cfg_.tp_comm == nullptr) {
      return Status::InvalidInput("a tensor-parallel shard needs a communicator");
    }
    StepModelConfig c = dev_.layout();
    c.dtype = cfg_.dtype;
    c.kv_dtype = cfg_.kv_dtype.value_or(DefaultKvDType(cfg_.dtype));
    c.layers = stream.layers;
    if (c.pool.devices <= 1 || stream.shard.tp_size > 1) {
      // One device, or an MPI/virtual TP group: the stream's shard is the layout.
      c.pool.tp = stream.shard.tp_size;
      c.pool.devices = std::max(c.pool.devices, c.pool.tp);
      if (c.pool.devices % c.pool.tp != 0) c.pool.devices = c.pool.tp;
    }
    CB_RETURN_IF_ERROR(StepModel::Create(dev_.model(), dev_.topology(), stream.model, c, &model_));
    // Performance runs allocate nothing: the weights are only needed (and made, lazily) when
    // a step asks for logits, i.e. in verification.
    seed_ = weights.seed();
    return Status::Ok();
  }

  Status Run(const OpStream& stream, OpRange range, StepIO& io) override {
    if (io.want_logits) CB_RETURN_IF_ERROR(Compute(stream, range, io));
    if (!model_) return Status::Internal("the sim session ran before Load");
    const StepSummary step = SummarizeStep(io);
    const AllToAllKind kind =
        step.tokens > step.seqs ? AllToAllKind::kThroughput : AllToAllKind::kLowLatency;
    // A pool's layout may shard differently from the caller's stream: a whole step is
    // modelled on the layout's own stream.
    const bool whole = range.begin == 0 && range.end >= stream.ops.size();
    const StepCost c =
        whole ? model_->Step(step, kind) : model_->Step(step, kind, range.begin, range.end);
    dev_.runtime().Launch(stream_, c.seconds, c.seconds > 0 ? c.busy_seconds / c.seconds : 0);
    if (group_) group_->AddModelled(c.comm_seconds);
    if (!io.want_logits && range.end >= stream.ops.size()) {
      // No numerics in performance runs: deterministic in-range tokens stand in for samples.
      const int64_t vocab = std::max<int64_t>(1, stream.dims.vocab_full);
      io.next_tokens.resize(io.seqs.size());
      for (size_t s = 0; s < io.seqs.size(); ++s) {
        io.next_tokens[s] = static_cast<int32_t>((seed_ * 7919 + io.seqs[s].slot * 104729 +
                                                  io.seqs[s].past_len + io.seqs[s].new_tokens) %
                                                 static_cast<uint64_t>(vocab));
      }
    }
    return Status::Ok();
  }

  Status Synchronize() override {
    dev_.runtime().SynchronizeStream(stream_);
    return Status::Ok();
  }

  uint64_t AllocatedBytes() const override { return ref_ ? ref_->AllocatedBytes() : 0; }

  Status ReadBuffer(Buf buf, int64_t rows, std::vector<float>* out) const override {
    if (!ref_) return Status::Unsupported("the sim computes no activations outside verification");
    return ref_->ReadBuffer(buf, rows, out);
  }

 private:
  /// Numerics on the CPU through the reference backend (verification, small shapes).
  Status Compute(const OpStream& stream, OpRange range, StepIO& io) {
    if (!ref_) {
      if (stream.shard.tp_size > 1) {
        return Status::Unsupported(
            "the sim computes numerics on one device only; verify with --tp 1 or use --no-verify");
      }
      double bytes = 0;
      for (const WeightDesc& w : stream.weights) bytes += 4.0 * static_cast<double>(w.Elements());
      if (bytes > kMaxNumericsBytes) {
        return Status::Unsupported(
            "the sim computes numerics only for models up to 4 GiB of fp32 weights (this one "
            "has " +
            std::to_string(static_cast<int64_t>(bytes / (1 << 20))) +
            " MiB); use --no-verify or a smaller model");
      }
      std::unique_ptr<Device> ref = MakeReferenceDevice();
      CB_RETURN_IF_ERROR(ref->Open(cfg_, &ref_));
      CB_RETURN_IF_ERROR(ref_->Load(stream, WeightSource(seed_)));
    }
    return ref_->Run(stream, range, io);
  }

  SimDevice& dev_;
  SessionConfig cfg_;
  SimRuntime::StreamId stream_ = 0;
  VirtualGroup* group_ = nullptr;
  uint64_t seed_ = 0;
  std::unique_ptr<StepModel> model_;
  std::unique_ptr<Session> ref_;
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

// ---- device -------------------------------------------------------------------------------

SimDevice::SimDevice(DeviceModel model, Topology topology)
    : model_(std::move(model)), topology_(std::move(topology)) {
  clock_ = std::make_unique<SimClock>(runtime_);
  meter_ = std::make_unique<SimEnergyMeter>(*this);
}

SimDevice::~SimDevice() = default;

DeviceProps PropsOf(const DeviceModel& model) {
  DeviceProps p;
  p.backend = "sim";
  p.name = model.name;
  p.kind = model.kind;
  p.host = "simulated";
  for (int d = 0; d < kDTypeCount; ++d) p.peak_flops[d] = model.Peak(static_cast<DType>(d));
  p.mem_bandwidth_bytes_per_s = model.mem_bandwidth;
  p.mem_bytes = model.mem_bytes > 0 ? static_cast<uint64_t>(model.mem_bytes) : 0;
  p.isa = kModelVersion;
  p.simulated = true;
  return p;
}

DeviceProps SimDevice::Props() const { return PropsOf(model_); }

Support SimDevice::Supports(DType dtype) const {
  if (dtype == DType::kF16) return {false, "the sim models fp32, bf16, fp8 and int8, not fp16"};
  if (IsQuantized(dtype) && model_.Peak(dtype) <= 0) {
    return {false, model_.name + " has no native " + std::string(DTypeName(dtype)) +
                       " (catalog entry " + model_.id + " gives no " +
                       std::string(DTypeName(dtype)) + " peak)"};
  }
  if (model_.Peak(dtype) <= 0 || model_.mem_bandwidth <= 0) {
    return {false, "catalog entry " + model_.id +
                       " has no peak FLOP/s or memory bandwidth to simulate (calibrate it with "
                       "clusterbench calibrate)"};
  }
  return {};
}

Status SimDevice::Open(const SessionConfig& config, std::unique_ptr<Session>* out) {
  if (const Support s = Supports(config.dtype); !s.supported) return Status::Unsupported(s.reason);
  *out = std::make_unique<SimSession>(*this, config);
  return Status::Ok();
}

Clock& SimDevice::clock() { return *clock_; }
EnergyMeter* SimDevice::energy() { return model_.tdp_w > 0 ? meter_.get() : nullptr; }

void SimDevice::SetLayout(const PoolLayout& pool, int redundant_experts, bool overlap) {
  layout_.pool = pool;
  layout_.redundant_experts = redundant_experts;
  layout_.overlap = overlap;
}

const CatalogEntry* FindEntry(const DeviceCatalog& catalog, const std::string& name) {
  if (const CatalogEntry* e = catalog.Find(name)) return e;
  const std::string want = Lower(name);
  for (const CatalogEntry& e : catalog.entries()) {
    const std::string id = Lower(e.id);
    if (id.size() > want.size() && id.ends_with("-" + want)) return &e;
  }
  return nullptr;
}

Status LoadDeviceModel(const DeviceCatalog& catalog, const std::string& name, DeviceModel* out) {
  const CatalogEntry* e = FindEntry(catalog, name);
  if (e == nullptr) {
    return Status::InvalidInput("unknown catalog device '" + name + "'; known: " + catalog.Ids());
  }
  CB_RETURN_IF_ERROR(ModelFromCatalog(*e, out));
  Calibration cal;
  bool found = false;
  CB_RETURN_IF_ERROR(LoadCalibration(CalibrationPath(CalibrationDir(), e->id), &cal, &found));
  if (found) ApplyCalibration(cal, out);
  return Status::Ok();
}

Status MakeSimDevice(const std::string& backend, const std::string& catalog_dir,
                     std::unique_ptr<Device>* out) {
  std::string name = "huawei-ascend-910c";
  if (backend.starts_with("sim:")) name = backend.substr(4);
  DeviceCatalog catalog;
  CB_RETURN_IF_ERROR(
      DeviceCatalog::Load(catalog_dir.empty() ? DefaultCatalogDir() : catalog_dir, &catalog));
  DeviceModel model;
  if (Status s = LoadDeviceModel(catalog, name, &model); !s.ok()) {
    return Status::InvalidInput("--backend " + backend + ": " + s.message());
  }
  Topology topo;
  CB_RETURN_IF_ERROR(TopologyFor(*FindEntry(catalog, name), 1, &topo));
  *out = std::make_unique<SimDevice>(std::move(model), std::move(topo));
  return Status::Ok();
}

}  // namespace cb::sim
