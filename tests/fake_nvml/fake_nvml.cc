// A stand-in for libnvidia-ml.so.1 with the few functions NvmlMeter uses, for tests on
// machines without a GPU. Tests steer it through the fake_nvml_* functions (dlsym).
#include <atomic>
#include <cstdio>
#include <cstring>

namespace {

constexpr int kMaxGpus = 4;
constexpr int kSuccess = 0;
constexpr int kUninitialized = 1;
constexpr int kInvalidArgument = 2;
constexpr int kNotSupported = 3;
constexpr int kUnknown = 999;

std::atomic<int> g_count{2};
std::atomic<bool> g_energy_supported{true};
std::atomic<bool> g_init_fails{false};
std::atomic<bool> g_initialised{false};
std::atomic<unsigned long long> g_energy_mj[kMaxGpus];
std::atomic<unsigned> g_power_mw[kMaxGpus];
int g_handles[kMaxGpus] = {0, 1, 2, 3};

int IndexOf(void* handle) {
  for (int i = 0; i < kMaxGpus; ++i) {
    if (handle == &g_handles[i]) return i < g_count ? i : -1;
  }
  return -1;
}

}  // namespace

extern "C" {

// --- control (tests only) ---
void fake_nvml_configure(int count, int energy_supported, int init_fails) {
  g_count = count < 0 ? 0 : (count > kMaxGpus ? kMaxGpus : count);
  g_energy_supported = energy_supported != 0;
  g_init_fails = init_fails != 0;
}
void fake_nvml_set_energy_mj(int gpu, unsigned long long mj) { g_energy_mj[gpu] = mj; }
void fake_nvml_set_power_mw(int gpu, unsigned mw) { g_power_mw[gpu] = mw; }

// --- NVML ---
int nvmlInit_v2() {
  if (g_init_fails) return kUnknown;
  g_initialised = true;
  return kSuccess;
}
int nvmlShutdown() {
  g_initialised = false;
  return kSuccess;
}
const char* nvmlErrorString(int r) {
  switch (r) {
    case kSuccess:
      return "Success";
    case kNotSupported:
      return "Not Supported";
    case kUninitialized:
      return "Uninitialized";
    case kInvalidArgument:
      return "Invalid Argument";
    default:
      return "Unknown Error";
  }
}
int nvmlDeviceGetCount_v2(unsigned* count) {
  if (!g_initialised) return kUninitialized;
  *count = static_cast<unsigned>(g_count.load());
  return kSuccess;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned index, void** device) {
  if (!g_initialised) return kUninitialized;
  if (index >= static_cast<unsigned>(g_count.load())) return kInvalidArgument;
  *device = &g_handles[index];
  return kSuccess;
}
int nvmlDeviceGetUUID(void* device, char* uuid, unsigned length) {
  const int i = IndexOf(device);
  if (i < 0) return kInvalidArgument;
  std::snprintf(uuid, length, "GPU-fake0000-0000-0000-0000-00000000000%d", i);
  return kSuccess;
}
int nvmlDeviceGetName(void* device, char* name, unsigned length) {
  if (IndexOf(device) < 0) return kInvalidArgument;
  std::snprintf(name, length, "NVIDIA H100 80GB HBM3 (fake)");
  return kSuccess;
}
int nvmlDeviceGetTotalEnergyConsumption(void* device, unsigned long long* mj) {
  const int i = IndexOf(device);
  if (i < 0) return kInvalidArgument;
  if (!g_energy_supported) return kNotSupported;
  *mj = g_energy_mj[i];
  return kSuccess;
}
int nvmlDeviceGetPowerUsage(void* device, unsigned* mw) {
  const int i = IndexOf(device);
  if (i < 0) return kInvalidArgument;
  *mw = g_power_mw[i];
  return kSuccess;
}

}  // extern "C"
