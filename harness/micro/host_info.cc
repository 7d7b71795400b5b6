#include "harness/micro/host_info.h"

#include <omp.h>
#include <unistd.h>

#include <ctime>

#include "backends/cpu/host_info.h"

#ifndef CLUSTERBENCH_VERSION
#define CLUSTERBENCH_VERSION "unknown"
#endif

namespace cb {

std::string DnnlIsaName() { return cpu::DnnlIsaName(); }

HostInfo CurrentHostInfo() {
  HostInfo h;
  h.host = cpu::HostName();
  h.cpu_model = cpu::CpuModelName();
  h.isa = DnnlIsaName();
  h.threads = omp_get_max_threads();
  return h;
}

std::string IsoUtcNow() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

const char* ToolVersion() { return CLUSTERBENCH_VERSION; }

}  // namespace cb
