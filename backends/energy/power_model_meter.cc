#include "backends/energy/power_model_meter.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "backends/energy/sampler.h"
#include "harness/core/fmt.h"

namespace cb::energy {
namespace {

double ProcessCpuS() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

}  // namespace

Status PowerModelMeter::Start() {
  if (!(opt_.tdp_w > 0) || opt_.idle_w < 0 || opt_.idle_w > opt_.tdp_w || opt_.devices < 1) {
    return Status::InvalidInput("power model needs 0 <= idle_w <= tdp_w, tdp_w > 0, devices >= 1");
  }
  start_wall_s_ = NowS();
  start_cpu_s_ = ProcessCpuS();
  running_ = true;
  return Status::Ok();
}

Status PowerModelMeter::StopReading(EnergyReading* out) {
  if (!running_) return Status::Internal("PowerModelMeter::Stop without Start");
  running_ = false;
  const double window = NowS() - start_wall_s_;
  const double cpu = ProcessCpuS() - start_cpu_s_;
  double util = 0;
  std::string how;
  if (opt_.utilisation) {
    util = std::clamp(*opt_.utilisation, 0.0, 1.0);
    how = "given";
  } else {
    const long cpus = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
    util = window > 0 ? std::clamp(cpu / (window * cpus), 0.0, 1.0) : 0.0;
    how = "process CPU time " + Fmt(cpu, "%.3g") + " s / (wall " + Fmt(window, "%.3g") + " s x " +
          std::to_string(cpus) + " CPUs)";
  }
  const double watts = opt_.idle_w + (opt_.tdp_w - opt_.idle_w) * util;
  EnergyReading r;
  r.source = "model";
  r.window_s = window;
  r.sampling_interval_s = 0;
  r.valid = window > 0;
  r.joules = watts * window * opt_.devices;
  r.domains.push_back({"model", opt_.entry, r.joules});
  r.notes.push_back("modelled, not measured: " + std::to_string(opt_.devices) + " x (idle " +
                    Fmt(opt_.idle_w, "%.3g") + " W + (TDP " + Fmt(opt_.tdp_w, "%.3g") +
                    " W - idle) x utilisation " + Fmt(util, "%.3g") +
                    ") = " + Fmt(watts * opt_.devices, "%.3g") + " W; utilisation " + how +
                    "; figures from catalog entry " + (opt_.entry.empty() ? "?" : opt_.entry));
  *out = std::move(r);
  return Status::Ok();
}

Status PowerModelMeter::Stop(double* joules) {
  EnergyReading r;
  CB_RETURN_IF_ERROR(StopReading(&r));
  *joules = r.joules;
  return Status::Ok();
}

Status FallbackMeter::Start() {
  active_ = nullptr;
  why_.clear();
  Status s = primary_->Start();
  if (s.ok()) {
    active_ = primary_.get();
    return s;
  }
  why_ = primary_->source() + " unavailable: " + s.message();
  if (!fallback_) return s;
  CB_RETURN_IF_ERROR(fallback_->Start());
  active_ = fallback_.get();
  return Status::Ok();
}

Status FallbackMeter::StopReading(EnergyReading* out) {
  if (active_ == nullptr) return Status::Internal("FallbackMeter::Stop without Start");
  CB_RETURN_IF_ERROR(active_->StopReading(out));
  if (!why_.empty()) out->notes.insert(out->notes.begin(), why_);
  active_ = nullptr;
  return Status::Ok();
}

Status FallbackMeter::Stop(double* joules) {
  EnergyReading r;
  CB_RETURN_IF_ERROR(StopReading(&r));
  *joules = r.joules;
  return Status::Ok();
}

}  // namespace cb::energy
