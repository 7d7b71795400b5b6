#include "harness/micro/host_info.h"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <map>

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

namespace {

/// The first line of a small sysfs file, or "" when it cannot be read.
std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

/// "32768K", "1M", "512" -> bytes; 0 when malformed.
uint64_t ParseCacheSize(const std::string& text) {
  size_t used = 0;
  uint64_t v = 0;
  try {
    v = std::stoull(text, &used);
  } catch (const std::exception&) {
    return 0;
  }
  const std::string unit = text.substr(used);
  if (unit.empty()) return v;
  if (unit == "K") return v << 10;
  if (unit == "M") return v << 20;
  if (unit == "G") return v << 30;
  return 0;
}

}  // namespace

uint64_t LastLevelCacheBytes(const std::string& cpu_root) {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) return 0;
  // Highest level seen so far -> size of each distinct instance (keyed by its CPU list).
  int top = 0;
  std::map<std::string, uint64_t> instances;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &mask)) continue;
    for (int index = 0;; ++index) {
      const std::string dir =
          cpu_root + "/cpu" + std::to_string(cpu) + "/cache/index" + std::to_string(index);
      const std::string level_text = ReadLine(dir + "/level");
      if (level_text.empty()) break;
      if (ReadLine(dir + "/type") == "Instruction") continue;
      const int level = std::atoi(level_text.c_str());
      const uint64_t size = ParseCacheSize(ReadLine(dir + "/size"));
      if (level < top || size == 0) continue;
      if (level > top) {
        top = level;
        instances.clear();
      }
      instances[ReadLine(dir + "/shared_cpu_list") + "@" + std::to_string(index)] = size;
    }
  }
  uint64_t total = 0;
  for (const auto& [key, size] : instances) total += size;
  return total;
}

const char* ToolVersion() { return CLUSTERBENCH_VERSION; }

}  // namespace cb
