#include "harness/micro/micro_benchmarks.h"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>

#include "harness/core/cancel_flag.h"
#include "harness/micro/decode_gemv_kernel.h"
#include "harness/micro/matmul_kernel.h"
#include "harness/micro/memory_kernels.h"
#include "harness/micro/micro_reporter.h"
#include "harness/micro/weight_gen_kernel.h"

namespace cb {
namespace {

constexpr size_t kGiB = size_t{1} << 30;

/// N x K of llama-3.2-1b's projections (hidden 2048, intermediate 8192).
struct ProjShape {
  int64_t n, k;
  const char* role;
};
constexpr ProjShape kProjections[] = {
    {2048, 2048, "q/o proj"}, {8192, 2048, "gate/up"}, {2048, 8192, "down"}};
constexpr int64_t kDecodeM[] = {1, 8};
constexpr int64_t kPrefillM[] = {128, 512};
/// Square shapes for the peak: 2048^3 is cache-friendly, 4096^3 amortises edges better;
/// whichever is faster on the host sets the ceiling. (The M=512 prefill shapes were measured
/// 2-10% below them on Zen 5, so they are left out of the ceiling set to bound its time.)
constexpr int64_t kSquare[] = {2048, 4096};
/// Weights of every matmul are cycled through copies spanning this much memory, far more
/// than any CPU's last-level cache slice, so bytes/s at decode shapes is DRAM traffic as in
/// a real decode step, not a cache-resident matrix read over and over.
constexpr double kColdWeightBytes = 512.0 * (1 << 20);
constexpr int kMaxWeightCopies = 64;

std::string MatmulName(DType dt, int64_t m, int64_t n, int64_t k) {
  return "matmul/" + std::string(DTypeName(dt)) + "/m" + std::to_string(m) + "_n" +
         std::to_string(n) + "_k" + std::to_string(k);
}

/// What the benchmark currently being run holds. Set up on the first call of a benchmark's
/// function (Google Benchmark calls it once per iteration-count trial and repetition) and
/// released when the next benchmark starts, so at most one benchmark's buffers are live.
struct SuiteState {
  const MicroBenchSpec* active = nullptr;
  size_t started = 0, total = 0;
  std::string setup_error;
  std::unique_ptr<MatmulKernel> kernel;
  std::unique_ptr<BandwidthBuffer> a, b;
  std::unique_ptr<WeightGenKernel> gen;
  std::unique_ptr<DecodeGemvKernel> gemv;

  void Release() {
    kernel.reset();
    gemv.reset();
    a.reset();
    b.reset();
    gen.reset();
    setup_error.clear();
    active = nullptr;
  }

  void SetUp(const MicroBenchSpec& spec) {
    Release();
    active = &spec;
    ++started;
    std::fprintf(stderr, "micro: [%zu/%zu] %s %s ...\n", started, total, spec.name.c_str(),
                 MicroShapeString(spec).c_str());
    switch (spec.kind) {
      case MicroKind::kMatmul: {
        MatmulConfig config;
        config.dtype = spec.dtype;
        config.m = spec.m;
        config.n = spec.n;
        config.k = spec.k;
        config.weight_copies = spec.weight_copies;
        Status s = MatmulKernel::Create(config, &kernel);
        if (!s.ok()) {
          setup_error = s.message();
          return;
        }
        kernel->Run();  // warm-up: JIT, first touch of dst (weights were written by reorder)
        break;
      }
      case MicroKind::kMemRead:
      case MicroKind::kMemCopy: {
        const size_t floats = spec.buffer_bytes / sizeof(float);
        a = std::make_unique<BandwidthBuffer>(floats, 1.0f);
        if (spec.kind == MicroKind::kMemCopy) b = std::make_unique<BandwidthBuffer>(floats, 0.0f);
        if (!a->ok() || (b && !b->ok())) {
          setup_error = "cannot allocate " + MicroShapeString(spec);
          return;
        }
        // Warm-up pass.
        if (b) {
          StreamCopy(b->data(), a->data(), floats);
        } else {
          benchmark::DoNotOptimize(StreamReadSum(a->data(), floats));
        }
        break;
      }
      case MicroKind::kDecodeGemv: {
        Status s = DecodeGemvKernel::Create(spec.dtype, spec.n, spec.k, spec.weight_copies, &gemv);
        if (!s.ok()) setup_error = s.message();
        break;
      }
      case MicroKind::kWeightGen: {
        gen = std::make_unique<WeightGenKernel>(spec.dtype, spec.n, spec.k);
        if (Status s = gen->Run(); !s.ok()) setup_error = s.message();  // allocates, touches
        break;
      }
    }
  }
};

void RunOne(benchmark::State& state, const MicroBenchSpec& spec, SuiteState& suite) {
  if (g_cancel_requested.load(std::memory_order_relaxed)) {
    state.SkipWithError("interrupted");
    for (auto _ : state) {
    }
    return;
  }
  if (suite.active != &spec) suite.SetUp(spec);
  if (!suite.setup_error.empty()) {
    state.SkipWithError(suite.setup_error.c_str());
    for (auto _ : state) {
    }
    return;
  }
  double bytes = 0, flops = 0;
  switch (spec.kind) {
    case MicroKind::kMatmul: {
      MatmulKernel& k = *suite.kernel;
      for (auto _ : state) {
        k.Run();
        if (g_cancel_requested.load(std::memory_order_relaxed)) {
          state.SkipWithError("interrupted");
          break;
        }
      }
      flops = k.Flops();
      bytes = k.Bytes();
      state.SetLabel(k.impl());
      break;
    }
    case MicroKind::kDecodeGemv: {
      DecodeGemvKernel& k = *suite.gemv;
      for (auto _ : state) k.Run();
      flops = k.Flops();
      bytes = k.Bytes();
      state.SetLabel(k.Label());
      break;
    }
    case MicroKind::kMemRead: {
      const float* p = suite.a->data();
      const size_t n = suite.a->size();
      for (auto _ : state) {
        double sum = StreamReadSum(p, n);
        benchmark::DoNotOptimize(sum);
      }
      bytes = static_cast<double>(suite.a->bytes());
      state.SetLabel(MemoryKernelsUseAvx512() ? "avx512 load" : "scalar load");
      break;
    }
    case MicroKind::kWeightGen:
      for (auto _ : state) {
        if (Status s = suite.gen->Run(); !s.ok()) state.SkipWithError(s.message().c_str());
      }
      bytes = suite.gen->Bytes();
      state.SetLabel("generator -> packed layout");
      break;
    case MicroKind::kMemCopy: {
      float* dst = suite.b->data();
      const float* src = suite.a->data();
      const size_t n = suite.a->size();
      for (auto _ : state) {
        StreamCopy(dst, src, n);
        benchmark::ClobberMemory();
      }
      bytes = 2.0 * suite.a->bytes();
      state.SetLabel(MemoryKernelsUseAvx512() ? "avx512 load + nt store" : "memcpy");
      break;
    }
  }
  using benchmark::Counter;
  if (flops > 0) state.counters["flops_per_s"] = Counter(flops, Counter::kIsIterationInvariantRate);
  state.counters["bytes_per_s"] = Counter(bytes, Counter::kIsIterationInvariantRate);
}

}  // namespace

std::string_view MicroKindName(MicroKind k) {
  switch (k) {
    case MicroKind::kMatmul:
      return "matmul";
    case MicroKind::kMemRead:
      return "mem_read";
    case MicroKind::kMemCopy:
      return "mem_copy";
    case MicroKind::kWeightGen:
      return "weight_gen";
    case MicroKind::kDecodeGemv:
      return "quant_gemv";
  }
  return "?";
}

std::string MicroShapeString(const MicroBenchSpec& s) {
  if (s.kind == MicroKind::kWeightGen) return std::to_string(s.n) + "x" + std::to_string(s.k);
  if (s.kind != MicroKind::kMatmul && s.kind != MicroKind::kDecodeGemv) {
    const double gib = static_cast<double>(s.buffer_bytes) / kGiB;
    char buf[48];
    std::snprintf(buf, sizeof(buf), "%g GiB%s", gib, s.kind == MicroKind::kMemCopy ? " x2" : "");
    return buf;
  }
  return std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k) +
         (s.role.empty() ? "" : " " + s.role);
}

std::vector<MicroBenchSpec> AllMicroBenchmarks() {
  std::vector<MicroBenchSpec> out;
  MicroBenchSpec read;
  read.name = "mem/read";
  read.kind = MicroKind::kMemRead;
  read.buffer_bytes = kGiB;
  read.ceiling = true;
  out.push_back(read);
  MicroBenchSpec copy;
  copy.name = "mem/copy";
  copy.kind = MicroKind::kMemCopy;
  copy.buffer_bytes = kGiB / 2;
  out.push_back(copy);

  for (DType dt : {DType::kBF16, DType::kF32, DType::kInt8, DType::kFP8}) {
    MicroBenchSpec gen;
    gen.name = "gen/" + std::string(DTypeName(dt));
    gen.kind = MicroKind::kWeightGen;
    gen.dtype = dt;
    gen.n = gen.k = 4096;
    out.push_back(gen);
  }
  for (DType dt : {DType::kBF16, DType::kF32, DType::kInt8}) {
    if (!MatmulKernel::Supported(dt)) continue;
    auto add = [&](int64_t m, int64_t n, int64_t k, const char* role, bool ceiling) {
      MicroBenchSpec s;
      s.name = MatmulName(dt, m, n, k);
      s.kind = MicroKind::kMatmul;
      s.dtype = dt;
      s.m = m;
      s.n = n;
      s.k = k;
      s.role = role;
      s.weight_copies =
          MatmulKernel::CopiesForFootprint(dt, n, k, kColdWeightBytes, kMaxWeightCopies);
      s.ceiling = ceiling;
      out.push_back(s);
    };
    for (int64_t m : kDecodeM) {
      for (const auto& p : kProjections) add(m, p.n, p.k, p.role, false);
    }
    for (int64_t m : kPrefillM) {
      for (const auto& p : kProjections) add(m, p.n, p.k, p.role, false);
    }
    for (int64_t s : kSquare) add(s, s, s, "peak", true);
  }
  // The cpu backend's own decode kernels (the matmul rows above time oneDNN alone).
  for (DType dt : {DType::kBF16, DType::kF32, DType::kInt8, DType::kFP8}) {
    if (!DecodeGemvKernel::Supported(dt)) continue;
    for (const auto& p : kProjections) {
      MicroBenchSpec s;
      s.name = "gemv/" +
               std::string(dt == DType::kFP8 ? "fp8-weight-only" : std::string(DTypeName(dt))) +
               "/n" + std::to_string(p.n) + "_k" + std::to_string(p.k);
      s.kind = MicroKind::kDecodeGemv;
      s.dtype = dt;
      s.m = 1;
      s.n = p.n;
      s.k = p.k;
      s.role = p.role;
      s.weight_copies =
          MatmulKernel::CopiesForFootprint(dt, p.n, p.k, kColdWeightBytes, kMaxWeightCopies);
      out.push_back(s);
    }
  }
  return out;
}

Status RunMicroBenchmarks(const std::vector<MicroBenchSpec>& specs, const MicroRunConfig& config,
                          std::vector<MicroResult>* results,
                          const std::function<void(const MicroResult&)>& on_result) {
  if (config.min_time_s <= 0) return Status::InvalidInput("micro: min time must be > 0 s");
  if (config.repetitions < 1) return Status::InvalidInput("micro: repetitions must be >= 1");
  results->clear();
  if (specs.empty()) return Status::Ok();

  SuiteState suite;
  suite.total = specs.size();
  benchmark::ClearRegisteredBenchmarks();
  for (const MicroBenchSpec& spec : specs) {
    benchmark::RegisterBenchmark(spec.name.c_str(),
                                 [&spec, &suite](benchmark::State& st) { RunOne(st, spec, suite); })
        ->UseRealTime()
        ->MinTime(config.min_time_s)
        ->Repetitions(config.repetitions)
        ->Unit(benchmark::kMillisecond);
  }
  MicroReporter reporter(specs, on_result);
  benchmark::RunSpecifiedBenchmarks(&reporter, "^(matmul|mem|gen|gemv)/");
  benchmark::ClearRegisteredBenchmarks();
  suite.Release();
  *results = reporter.Results();
  if (g_cancel_requested.load(std::memory_order_relaxed)) return Status::Cancelled("interrupted");
  return Status::Ok();
}

}  // namespace cb
