#pragma once

#include <cstdint>
#include <string>

namespace cb {

/// What identifies the machine a ceiling was measured on. A cached ceiling is reused only
/// when all of these match the current process.
struct HostInfo {
  std::string host;       ///< gethostname()
  std::string cpu_model;  ///< "model name" of /proc/cpuinfo
  std::string isa;        ///< oneDNN's effective ISA, e.g. "avx512_core_bf16"
  int threads = 0;        ///< OpenMP threads the kernels run with (omp_get_max_threads)
};

/// The current host, CPU, effective oneDNN ISA and OpenMP thread count.
HostInfo CurrentHostInfo();

/// oneDNN's effective CPU ISA (honours ONEDNN_MAX_CPU_ISA), e.g. "avx512_core_bf16".
std::string DnnlIsaName();

/// Current UTC time as ISO-8601 with seconds, e.g. "2025-01-31T12:00:00Z".
std::string IsoUtcNow();

/// Bytes of last-level cache that this process's CPUs (its affinity mask) use: the highest cache
/// level's size summed over its distinct instances (two CPUs sharing one L3 count it once), read
/// from `<cpu_root>/cpuN/cache/indexK/{level,size,shared_cpu_list}`. 0 when unknown.
uint64_t LastLevelCacheBytes(const std::string& cpu_root = "/sys/devices/system/cpu");

/// clusterbench's version, written into cached ceilings.
const char* ToolVersion();

}  // namespace cb
