#include "backends/energy/nvml_meter.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "harness/core/fmt.h"

namespace cb::energy {
namespace {

// The few NVML declarations used (nvml.h is not needed to build).
using nvmlReturn_t = int;
using nvmlDevice_t = void*;
constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr const char* kDefaultLibrary = "libnvidia-ml.so.1";

}  // namespace

struct NvmlMeter::Api {
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*get_count)(unsigned*) = nullptr;
  nvmlReturn_t (*get_handle)(unsigned, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*get_uuid)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*get_name)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*get_energy)(nvmlDevice_t, unsigned long long*) = nullptr;  // mJ
  nvmlReturn_t (*get_power)(nvmlDevice_t, unsigned*) = nullptr;             // mW

  std::string Error(nvmlReturn_t r) const {
    const char* s = error_string ? error_string(r) : nullptr;
    return (s ? std::string(s) : "error") + " (NVML code " + std::to_string(r) + ")";
  }
};

NvmlMeter::NvmlMeter(NvmlOptions options) : opt_(std::move(options)) {
  if (opt_.library.empty()) {
    const char* env = std::getenv("CLUSTERBENCH_NVML_LIBRARY");
    opt_.library = env && *env ? env : kDefaultLibrary;
  }
}

NvmlMeter::~NvmlMeter() {
  sampler_.Stop();
  Close();
}

void NvmlMeter::Close() {
  if (initialised_ && api_ && api_->shutdown) api_->shutdown();
  initialised_ = false;
  delete api_;
  api_ = nullptr;
  if (lib_) dlclose(lib_);
  lib_ = nullptr;
}

Status NvmlMeter::Start() {
  sampler_.Stop();
  Close();
  lib_ = dlopen(opt_.library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib_ == nullptr) {
    const char* err = dlerror();
    return Status::Unsupported("cannot load " + opt_.library +
                               " (no NVIDIA driver?): " + (err ? err : "dlopen failed"));
  }
  api_ = new Api;
  struct Symbol {
    const char* name;
    void** slot;
    bool required;
  };
  const Symbol symbols[] = {
      {"nvmlInit_v2", reinterpret_cast<void**>(&api_->init), true},
      {"nvmlShutdown", reinterpret_cast<void**>(&api_->shutdown), true},
      {"nvmlErrorString", reinterpret_cast<void**>(&api_->error_string), false},
      {"nvmlDeviceGetCount_v2", reinterpret_cast<void**>(&api_->get_count), true},
      {"nvmlDeviceGetHandleByIndex_v2", reinterpret_cast<void**>(&api_->get_handle), true},
      {"nvmlDeviceGetUUID", reinterpret_cast<void**>(&api_->get_uuid), true},
      {"nvmlDeviceGetName", reinterpret_cast<void**>(&api_->get_name), false},
      {"nvmlDeviceGetTotalEnergyConsumption", reinterpret_cast<void**>(&api_->get_energy), false},
      {"nvmlDeviceGetPowerUsage", reinterpret_cast<void**>(&api_->get_power), true},
  };
  for (const Symbol& s : symbols) {
    *s.slot = dlsym(lib_, s.name);
    if (*s.slot == nullptr && s.required) {
      const std::string lib = opt_.library;
      Close();
      return Status::Unsupported(lib + " lacks " + s.name);
    }
  }
  if (nvmlReturn_t r = api_->init(); r != kNvmlSuccess) {
    const std::string what = api_->Error(r);
    Close();
    return Status::Unsupported("nvmlInit failed: " + what);
  }
  initialised_ = true;
  unsigned count = 0;
  if (nvmlReturn_t r = api_->get_count(&count); r != kNvmlSuccess) {
    return Status::Unsupported("nvmlDeviceGetCount failed: " + api_->Error(r));
  }
  std::vector<unsigned> indices = opt_.indices;
  if (indices.empty()) {
    for (unsigned i = 0; i < count; ++i) indices.push_back(i);
  }
  if (indices.empty()) return Status::Unsupported("NVML sees no GPU");
  std::vector<Gpu> gpus;
  std::vector<std::string> notes;
  const double now = NowS();
  bool any_power = false;
  for (unsigned i : indices) {
    if (i >= count) {
      return Status::InvalidInput("GPU " + std::to_string(i) + " does not exist (NVML sees " +
                                  std::to_string(count) + ")");
    }
    Gpu g;
    g.index = i;
    if (nvmlReturn_t r = api_->get_handle(i, &g.handle); r != kNvmlSuccess) {
      return Status::Unsupported("GPU " + std::to_string(i) + ": " + api_->Error(r));
    }
    char buf[96] = {0};
    if (api_->get_uuid(g.handle, buf, sizeof buf) == kNvmlSuccess) g.uuid = buf;
    char name[96] = {0};
    if (api_->get_name && api_->get_name(g.handle, name, sizeof name) == kNvmlSuccess)
      g.name = name;
    nvmlReturn_t er = -1;
    if (api_->get_energy) er = api_->get_energy(g.handle, &g.start_mj);
    if (er == kNvmlSuccess) {
      g.energy_counter = true;
    } else {
      unsigned mw = 0;
      if (nvmlReturn_t pr = api_->get_power(g.handle, &mw); pr != kNvmlSuccess) {
        return Status::Unsupported("GPU " + std::to_string(i) + ": neither the energy counter (" +
                                   (api_->get_energy ? api_->Error(er) : "absent") +
                                   ") nor power readings (" + api_->Error(pr) + ") are available");
      }
      g.last_t = now;
      g.last_w = mw * 1e-3;
      g.samples = 1;
      any_power = true;
      notes.push_back("GPU " + std::to_string(i) + " (" + g.uuid +
                      ") has no energy counter: power readings integrated every " +
                      Fmt(opt_.sample_interval_s, "%.3g") + " s");
    }
    gpus.push_back(std::move(g));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    gpus_ = std::move(gpus);
    notes_ = std::move(notes);
    start_s_ = now;
    running_ = true;
  }
  if (any_power) sampler_.Start(opt_.sample_interval_s, [this] { SamplePower(); });
  return Status::Ok();
}

void NvmlMeter::SamplePower() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!running_) return;
  const double now = NowS();
  for (Gpu& g : gpus_) {
    if (g.energy_counter) continue;
    unsigned mw = 0;
    if (api_->get_power(g.handle, &mw) != kNvmlSuccess) {
      g.failed = true;
      continue;
    }
    const double w = mw * 1e-3;
    g.joules += (g.last_w + w) / 2 * (now - g.last_t);
    g.last_t = now;
    g.last_w = w;
    ++g.samples;
  }
}

Status NvmlMeter::StopReading(EnergyReading* out) {
  if (!running_) return Status::Internal("NvmlMeter::Stop without a successful Start");
  sampler_.Stop();
  SamplePower();
  const double now = NowS();
  std::lock_guard<std::mutex> lock(mu_);
  running_ = false;
  EnergyReading r;
  r.source = "nvml";
  r.window_s = now - start_s_;
  r.notes = notes_;
  bool any_power = false;
  for (Gpu& g : gpus_) {
    const std::string label = "gpu" + std::to_string(g.index);
    if (g.energy_counter) {
      unsigned long long end_mj = 0;
      if (nvmlReturn_t e = api_->get_energy(g.handle, &end_mj); e != kNvmlSuccess) {
        r.valid = false;
        r.notes.push_back(label + ": reading the energy counter failed: " + api_->Error(e));
        continue;
      }
      g.joules = end_mj >= g.start_mj ? (end_mj - g.start_mj) * 1e-3 : 0;
      if (end_mj <= g.start_mj) {
        r.valid = false;
        r.notes.push_back(label + " (" + g.uuid + "): the energy counter did not advance in " +
                          Fmt(r.window_s, "%.3g") + " s");
      }
    } else {
      any_power = true;
      if (g.failed) {
        r.valid = false;
        r.notes.push_back(label + ": a power reading failed during the window (a sampling gap)");
      }
      if (g.samples < 2) {
        r.valid = false;
        r.notes.push_back(label + ": fewer than two power samples in the window");
      }
    }
    r.domains.push_back({label, g.uuid, g.joules});
    r.joules += g.joules;
  }
  r.sampling_interval_s = any_power ? opt_.sample_interval_s : 0;
  if (r.window_s < kUpdatePeriodS) {
    r.valid = false;
    r.notes.push_back("window of " + Fmt(r.window_s, "%.3g") +
                      " s is shorter than NVML's update period (~" + Fmt(kUpdatePeriodS, "%.3g") +
                      " s)");
  }
  *out = std::move(r);
  return Status::Ok();
}

Status NvmlMeter::Stop(double* joules) {
  EnergyReading r;
  CB_RETURN_IF_ERROR(StopReading(&r));
  *joules = r.joules;
  return Status::Ok();
}

}  // namespace cb::energy
