#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/devices/catalog.h"
#include "backends/sim/perf_model.h"
#include "backends/sim/step_model.h"
#include "backends/sim/topology.h"

namespace cb::sim {

/// The device runtime, shaped like Ascend's ACL runtime (aclrtCreateStream, aclrtRecordEvent,
/// aclrtStreamWaitEvent, aclrtSynchronizeStream): work is queued on streams asynchronously
/// and completes on the device clock, which advances only by modelled time.
class SimRuntime {
 public:
  using StreamId = int;
  using EventId = int;

  SimRuntime();
  StreamId CreateStream();
  /// Queues work of `seconds` on `stream`; `busy` in [0, 1] is its utilisation (power model).
  void Launch(StreamId stream, double seconds, double busy);
  EventId RecordEvent(StreamId stream);
  void StreamWaitEvent(StreamId stream, EventId event);
  /// Seconds between two recorded events (aclrtEventElapsedTime).
  double EventElapsed(EventId start, EventId end) const;
  /// Completes the stream's queued work: the clock moves to when it finishes.
  void SynchronizeStream(StreamId stream);
  void SynchronizeDevice();
  /// The device stays idle until `t`: the clock moves there (no busy time is added).
  void IdleUntil(double t);
  double now() const { return now_; }
  /// Integral of utilisation over completed device time (busy seconds).
  double busy_seconds() const { return busy_s_; }

 private:
  double now_ = 0;
  double busy_s_ = 0;
  std::vector<double> ready_;   ///< per stream: when its queued work completes
  std::vector<double> events_;  ///< per event: its time on the device clock
};

/// The tensor-parallel group of a virtual cluster: one TP group is simulated analytically
/// (this process plays rank 0 and every rank computes the same shapes), the collectives are
/// identities numerically and their modelled time is reported as communication time.
class VirtualGroup final : public Communicator {
 public:
  explicit VirtualGroup(int size) : size_(size) {}
  int rank() const override { return 0; }
  int size() const override { return size_; }
  Status AllReduceSum(float*, size_t) override { return Status::Ok(); }
  Status AllGather(const float* send, size_t count, float* recv) override;
  Status AllToAllV(const float*, const int*, const int*, float*, const int*, const int*) override {
    return Status::Unsupported("a virtual group has no alltoallv");
  }
  Status Broadcast(void*, size_t, int) override { return Status::Ok(); }
  Status Barrier() override { return Status::Ok(); }
  Status Gather(const void* send, size_t bytes, void* recv, int root) override;
  double comm_seconds() const override { return comm_s_; }
  void ResetTimers() override { comm_s_ = 0; }
  void AddModelled(double s) { comm_s_ += s; }

 private:
  int size_;
  double comm_s_ = 0;
};

/// A simulated device: one catalog device (optionally one of a system's), its performance and
/// power model, and (with SetLayout) the virtual cluster it belongs to.
class SimDevice final : public Device {
 public:
  SimDevice(DeviceModel model, Topology topology);
  ~SimDevice() override;
  DeviceProps Props() const override;
  Support Supports(DType dtype) const override;
  Status Open(const SessionConfig& config, std::unique_ptr<Session>* out) override;
  Clock& clock() override;
  EnergyMeter* energy() override;

  /// Virtual devices in this process: the pool's devices; a session models the step of one
  /// of its ranks (StepModel), the slowest, and stands for all of them.
  void SetLayout(const PoolLayout& pool, int redundant_experts = 0, bool overlap = false);
  /// The links between the virtual devices (a catalog system's, or the device's own servers).
  void SetTopology(Topology t) { topology_ = std::move(t); }
  int devices() const { return layout_.pool.devices; }
  const StepModelConfig& layout() const { return layout_; }
  const DeviceModel& model() const { return model_; }
  const Topology& topology() const { return topology_; }
  SimRuntime& runtime() { return runtime_; }

 private:
  class SimClock;
  class SimEnergyMeter;
  DeviceModel model_;
  Topology topology_;
  SimRuntime runtime_;
  StepModelConfig layout_;
  std::unique_ptr<SimClock> clock_;
  std::unique_ptr<SimEnergyMeter> meter_;
};

/// The DeviceProps of a simulated device: the model's name, kind, peaks and memory.
DeviceProps PropsOf(const DeviceModel& model);

/// Fp32 weight bytes above which the sim does not compute numerics (verification).
inline constexpr double kMaxNumericsBytes = 4.0 * (1ull << 30);

/// Finds a catalog entry by id, name, or id without its vendor prefix ("ascend-910c",
/// "cloudmatrix-384", "h100-sxm"); nullptr when none.
const CatalogEntry* FindEntry(const DeviceCatalog& catalog, const std::string& name);

/// Opens "sim" (huawei-ascend-910c) or "sim:NAME" (a catalog device) with the catalog in
/// `catalog_dir` (empty: the default) and its calibration file if there is one.
Status MakeSimDevice(const std::string& backend, const std::string& catalog_dir,
                     std::unique_ptr<Device>* out);

/// The device's model for `name` (catalog + calibration), without a device.
Status LoadDeviceModel(const DeviceCatalog& catalog, const std::string& name, DeviceModel* out);

}  // namespace cb::sim
