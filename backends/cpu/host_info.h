#pragma once

#include <cstdint>
#include <string>

namespace cb::cpu {

/// "model name" of the first processor in /proc/cpuinfo ("unknown CPU" if absent).
std::string CpuModelName();
/// Logical CPUs online.
int CpuCount();
/// MemAvailable from /proc/meminfo in bytes (0 if unknown).
uint64_t MemAvailableBytes();
std::string HostName();
/// oneDNN's effective ISA as a name, e.g. "avx512_core_bf16".
std::string DnnlIsaName();
/// True when oneDNN's effective ISA includes avx512_core_bf16 (or AMX).
bool DnnlIsaHasBf16();
/// True when the CPU has the AVX-512 subsets the kernels are compiled for.
bool CpuHasAvx512();
/// True when the CPU has AVX512_BF16 (vdpbf16ps, vcvtneps2bf16).
bool CpuHasAvx512Bf16();

}  // namespace cb::cpu
