#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "harness/core/dtype.h"
#include "harness/core/status.h"

namespace cb {

/// kWeightGen: synthetic weights generated straight into the packed layout (the cpu backend's
/// Load), into memory already touched, so the figure is the generator's, not page faults'.
enum class MicroKind { kMatmul, kMemRead, kMemCopy, kWeightGen, kDecodeGemv };
/// "matmul", "mem_read", "mem_copy", "weight_gen"
std::string_view MicroKindName(MicroKind k);

/// One benchmark of the micro-suite. Names are what --filter matches, e.g.
/// "matmul/bf16/m512_n8192_k2048", "mem/read", "mem/copy", "gen/bf16".
struct MicroBenchSpec {
  std::string name;
  MicroKind kind = MicroKind::kMatmul;
  DType dtype = DType::kF32;  ///< matmul and weight_gen
  /// weight_gen: a matrix of n rows and k columns
  int64_t m = 0, n = 0, k = 0;
  std::string role;         ///< what the shape stands for: "q/o proj", "gate/up", "down", "peak"
  int weight_copies = 1;    ///< matmul: weight copies cycled through (see MatmulConfig)
  size_t buffer_bytes = 0;  ///< memory benchmarks: size of each buffer
  bool ceiling = false;     ///< part of the set MeasureCeilings runs
};

/// Human-readable shape: "512x8192x2048 gate/up" or "1 GiB".
std::string MicroShapeString(const MicroBenchSpec& s);

/// Every benchmark of the suite that can run here (bf16 matmul only where oneDNN has native
/// bf16 on this CPU). Order: memory, then matmul by dtype, shape.
std::vector<MicroBenchSpec> AllMicroBenchmarks();

/// Figures of one benchmark, summarised over its repetitions.
struct MicroResult {
  std::string name, kind, dtype, shape;
  std::string impl;  ///< oneDNN implementation ("brg:avx512_core_bf16"), or the kernel
  int64_t m = 0, n = 0, k = 0;
  int weight_copies = 1;
  double flops_per_iter = 0;   ///< 2*M*N*K for matmul, 0 otherwise
  double bytes_per_iter = 0;   ///< compulsory bytes moved per iteration
  int repetitions = 0;         ///< repetitions measured
  int64_t iterations = 0;      ///< iterations per repetition (of the first repetition)
  double time_s = 0;           ///< median wall seconds per iteration
  double flops_per_s = 0;      ///< median over repetitions
  double flops_per_s_max = 0;  ///< best repetition
  double bytes_per_s = 0;      ///< median over repetitions
  double bytes_per_s_max = 0;  ///< best repetition
  bool ok = true;
  std::string error;
};

struct MicroRunConfig {
  double min_time_s = 0.2;  ///< minimum measured time of each repetition
  int repetitions = 3;
};

/// Runs `specs` through Google Benchmark's runner (RunSpecifiedBenchmarks with our reporter)
/// and returns one result per spec, in order. `on_result`, when set, is called as each
/// benchmark finishes. Progress goes to stderr. A benchmark that fails is a result with
/// ok == false; the others still run. Uses Google Benchmark's global registry (cleared before
/// and after): call it from one thread at a time.
Status RunMicroBenchmarks(const std::vector<MicroBenchSpec>& specs, const MicroRunConfig& config,
                          std::vector<MicroResult>* results,
                          const std::function<void(const MicroResult&)>& on_result = {});

}  // namespace cb
