#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backends/comm/communicator.h"
#include "harness/core/dtype.h"
#include "harness/core/status.h"
#include "workloads/op_stream.h"
#include "workloads/step_io.h"
#include "workloads/weights.h"

namespace cb {

struct DeviceProps {
  std::string backend;  ///< "cpu", "cuda", "sim", "reference"
  std::string name;     ///< e.g. "AMD EPYC (2 cores)", "NVIDIA H100 80GB HBM3"
  std::string kind;     ///< "cpu", "gpu", "npu"
  std::string uuid;     ///< stable identity where the hardware has one, else empty
  std::string host;
  /// Nominal peaks from the catalog where known, 0 otherwise. MFU/MBU use the measured
  /// ceilings of `clusterbench micro`, not these.
  std::array<double, kDTypeCount> peak_flops{};
  double mem_bandwidth_bytes_per_s = 0;
  uint64_t mem_bytes = 0;  ///< memory a session may use (available, not installed)
  int threads = 0;         ///< worker threads (CPU)
  std::string isa;         ///< e.g. "avx512_core_bf16" (CPU)
  bool simulated = false;
};

/// Which rows of the op stream a call executes: ops[begin, end).
struct OpRange {
  size_t begin = 0;
  size_t end = 0;
};

struct SessionConfig {
  DType dtype = DType::kBF16;
  /// The KV cache's element type; unset: DefaultKvDType(dtype). A backend that cannot store
  /// the cache in this type refuses the session (kUnsupported).
  std::optional<DType> kv_dtype;
  /// fp8/int8 with the weights quantised only: activations stay in bf16 and matmuls compute
  /// in bf16 with the weights' scales (a device says so in Support::weight_only).
  bool weight_only = false;
  int64_t max_sequences = 1;    ///< KV-cache slots
  int64_t max_context = 0;      ///< tokens per slot
  int64_t max_step_tokens = 0;  ///< most new tokens in one step (sum over sequences)
  /// The tensor-parallel group for the stream's collectives; required when tp_size > 1.
  Communicator* tp_comm = nullptr;
  /// The expert-parallel group for moe_experts' alltoallv; required when ep_size > 1.
  Communicator* ep_comm = nullptr;
  /// Called by Load, from the loading thread, as weights are made: bytes done of the total
  /// (an estimate). May be empty.
  std::function<void(uint64_t done, uint64_t total)> load_progress;
};

/// One model instance (one rank's shard) on one device.
class Session {
 public:
  virtual ~Session() = default;
  /// Allocates weights for `stream.weights` and fills them from `weights`; allocates the KV
  /// cache and activation buffers for the SessionConfig given to Device::Open.
  virtual Status Load(const OpStream& stream, const WeightSource& weights) = 0;
  /// Executes ops[range] of the stream for one step. Whole-stream calls fill io.next_tokens
  /// (and io.logits when io.want_logits).
  virtual Status Run(const OpStream& stream, OpRange range, StepIO& io) = 0;
  /// Blocks until all queued work is done (a no-op on synchronous backends).
  virtual Status Synchronize() = 0;
  /// Bytes this session allocated on the device.
  virtual uint64_t AllocatedBytes() const = 0;

  /// Optional access to one activation buffer of the loaded stream, for per-op conformance
  /// tests and debugging: `rows` rows of the buffer's full width (see BufferRows()) as fp32,
  /// row-major; token ids travel as exact float values. Backends without it return
  /// kUnsupported. Values written to a buffer the backend keeps in bf16 are rounded.
  virtual Status ReadBuffer(Buf buf, int64_t rows, std::vector<float>* out) const {
    return Status::Unsupported("this backend gives no access to its activation buffers");
  }
  virtual Status WriteBuffer(Buf buf, int64_t rows, const std::vector<float>& data) {
    return Status::Unsupported("this backend gives no access to its activation buffers");
  }
};

/// Time as the device sees it: wall time read after Synchronize, or modelled time (sim).
class Clock {
 public:
  virtual ~Clock() = default;
  virtual double NowSeconds() = 0;
  virtual bool simulated() const { return false; }
  /// Waits until NowSeconds() >= t, with the device idle (serving scenarios, between
  /// arrivals): a real clock sleeps; a modelled clock moves its time forward.
  virtual void WaitUntil(double t) {
    for (double now = NowSeconds(); now < t; now = NowSeconds()) {
      std::this_thread::sleep_for(std::chrono::duration<double>(t - now));
    }
  }
};

/// Energy of one domain (RAPL package or DRAM) or device (a GPU by its UUID) over a window.
struct EnergyDomain {
  std::string name;  ///< e.g. "package-0", "package-0/dram", "gpu0", "model"
  std::string id;    ///< where it was read: sysfs zone, GPU UUID, catalog entry
  double joules = 0;
};

/// What an EnergyMeter read over one window (harness/energy/ has the implementations).
struct EnergyReading {
  std::string source;              ///< "rapl", "nvml", "model"
  double joules = 0;               ///< summed over domains and devices
  double window_s = 0;             ///< wall time between Start and Stop
  double sampling_interval_s = 0;  ///< period of the sampling thread; 0 when not sampled
  bool valid = true;               ///< false: sampling gaps, a counter that did not advance,
                                   ///< a window shorter than the counter's update period
  std::vector<std::string> notes;  ///< why not valid, fallbacks, how to grant access
  std::vector<EnergyDomain> domains;
};

/// Energy counter read around the measured window (RAPL, NVML, or a power model).
class EnergyMeter {
 public:
  virtual ~EnergyMeter() = default;
  virtual std::string source() const = 0;  ///< "rapl", "nvml", "model"
  virtual Status Start() = 0;
  virtual Status Stop(double* joules) = 0;
  /// Stop with everything the meter knows; the default wraps Stop(double*).
  virtual Status StopReading(EnergyReading* out) {
    double j = 0;
    CB_RETURN_IF_ERROR(Stop(&j));
    *out = EnergyReading{};
    out->source = source();
    out->joules = j;
    return Status::Ok();
  }
};

/// What a device can run; an unsupported workload is reported SKIPPED, not FAILED.
struct Support {
  bool supported = true;
  std::string reason;
  /// A quantised dtype the device runs weight-only (SessionConfig::weight_only).
  bool weight_only = false;
};

class Device {
 public:
  virtual ~Device() = default;
  virtual DeviceProps Props() const = 0;
  virtual Support Supports(DType dtype) const = 0;
  virtual Status Open(const SessionConfig& config, std::unique_ptr<Session>* out) = 0;
  virtual Clock& clock() = 0;
  virtual EnergyMeter* energy() = 0;  ///< nullptr where none is available
};

/// Wall clock (steady, monotonic).
class SteadyClock final : public Clock {
 public:
  double NowSeconds() override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace cb
