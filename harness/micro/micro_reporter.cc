#include "harness/micro/micro_reporter.h"

#include <algorithm>
#include <cstdio>

namespace cb {
namespace {

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

double Max(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

MicroResult BaseResult(const MicroBenchSpec& spec) {
  MicroResult r;
  r.name = spec.name;
  r.kind = std::string(MicroKindName(spec.kind));
  const bool typed = spec.kind != MicroKind::kMemRead && spec.kind != MicroKind::kMemCopy;
  r.dtype = typed ? std::string(DTypeName(spec.dtype)) : "";
  r.shape = MicroShapeString(spec);
  r.m = spec.m;
  r.n = spec.n;
  r.k = spec.k;
  r.weight_copies = spec.weight_copies;
  switch (spec.kind) {
    case MicroKind::kMatmul:
    case MicroKind::kDecodeGemv:  // the operands' bytes (scales, int32/fp32 outputs not counted)
      r.flops_per_iter = 2.0 * spec.m * spec.n * spec.k;
      r.bytes_per_iter = static_cast<double>(spec.m * spec.k + spec.k * spec.n + spec.m * spec.n) *
                         DTypeBytes(spec.dtype);
      break;
    case MicroKind::kMemRead:
      r.bytes_per_iter = static_cast<double>(spec.buffer_bytes);
      break;
    case MicroKind::kMemCopy:
      r.bytes_per_iter = 2.0 * spec.buffer_bytes;  // read src + write dst
      break;
    case MicroKind::kWeightGen:
      r.bytes_per_iter = static_cast<double>(spec.n * spec.k) * DTypeBytes(spec.dtype);
      break;
  }
  return r;
}

}  // namespace

MicroResult SummarizeRuns(const MicroBenchSpec& spec,
                          const std::vector<benchmark::BenchmarkReporter::Run>& runs) {
  MicroResult r = BaseResult(spec);
  std::vector<double> times, flops, bytes;
  for (const auto& run : runs) {
    if (run.run_type != benchmark::BenchmarkReporter::Run::RT_Iteration) continue;
    if (run.error_occurred) {
      r.ok = false;
      r.error = run.error_message;
      return r;
    }
    if (run.iterations <= 0 || run.real_accumulated_time <= 0) continue;
    if (r.impl.empty()) r.impl = run.report_label;
    if (r.iterations == 0) r.iterations = run.iterations;
    const double t = run.real_accumulated_time / static_cast<double>(run.iterations);
    times.push_back(t);
    flops.push_back(r.flops_per_iter / t);
    bytes.push_back(r.bytes_per_iter / t);
  }
  if (times.empty()) {
    r.ok = false;
    r.error = "no measured repetition";
    return r;
  }
  r.repetitions = static_cast<int>(times.size());
  r.time_s = Median(times);
  r.flops_per_s = Median(flops);
  r.flops_per_s_max = Max(flops);
  r.bytes_per_s = Median(bytes);
  r.bytes_per_s_max = Max(bytes);
  return r;
}

MicroReporter::MicroReporter(const std::vector<MicroBenchSpec>& specs,
                             std::function<void(const MicroResult&)> on_result)
    : specs_(specs), on_result_(std::move(on_result)) {
  for (size_t i = 0; i < specs_.size(); ++i) index_[specs_[i].name] = i;
}

bool MicroReporter::ReportContext(const Context& context) {
  std::fprintf(stderr, "micro: %zu benchmark(s), %d CPU(s) at %.0f MHz\n", specs_.size(),
               context.cpu_info.num_cpus, context.cpu_info.cycles_per_second / 1e6);
  return true;
}

void MicroReporter::ReportRuns(const std::vector<Run>& reports) {
  for (const Run& run : reports) {
    if (run.run_type != Run::RT_Iteration) continue;
    const std::string& name = run.run_name.function_name;
    if (!index_.count(name) || done_.count(name)) continue;
    auto& reps = pending_[name];
    reps.push_back(run);
    // All repetitions of a benchmark are reported before the next one starts; an error
    // ends the benchmark early.
    if (run.error_occurred ||
        static_cast<int64_t>(reps.size()) >= std::max<int64_t>(1, run.repetitions)) {
      Complete(name);
    }
  }
}

void MicroReporter::Finalize() {
  while (!pending_.empty()) Complete(pending_.begin()->first);
}

void MicroReporter::Complete(const std::string& name) {
  MicroResult r = SummarizeRuns(specs_[index_.at(name)], pending_[name]);
  pending_.erase(name);
  ++completed_;
  if (r.ok) {
    std::fprintf(stderr, "micro: [%zu/%zu] %s: %.4g ms", completed_, specs_.size(), name.c_str(),
                 r.time_s * 1e3);
    if (r.flops_per_iter > 0) std::fprintf(stderr, ", %.1f GFLOP/s", r.flops_per_s / 1e9);
    std::fprintf(stderr, ", %.1f GB/s (median of %d)\n", r.bytes_per_s / 1e9, r.repetitions);
  } else {
    std::fprintf(stderr, "micro: [%zu/%zu] %s: FAILED: %s\n", completed_, specs_.size(),
                 name.c_str(), r.error.c_str());
  }
  if (on_result_) on_result_(r);
  done_.emplace(name, std::move(r));
}

std::vector<MicroResult> MicroReporter::Results() const {
  std::vector<MicroResult> out;
  for (const auto& spec : specs_) {
    auto it = done_.find(spec.name);
    if (it != done_.end()) {
      out.push_back(it->second);
    } else {
      MicroResult r = SummarizeRuns(spec, {});
      r.error = "not run";
      out.push_back(r);
    }
  }
  return out;
}

}  // namespace cb
