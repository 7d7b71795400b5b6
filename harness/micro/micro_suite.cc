#include "harness/micro/micro_suite.h"

#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>

#include "harness/micro/host_info.h"

namespace cb {
namespace {

std::string FormatTime(double s) {
  char buf[32];
  if (s >= 1) {
    std::snprintf(buf, sizeof(buf), "%.3f s", s);
  } else if (s >= 1e-3) {
    std::snprintf(buf, sizeof(buf), "%.3f ms", s * 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%.2f us", s * 1e6);
  }
  return buf;
}

std::string TableHeader() {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%-30s %-22s %-5s %12s %10s %9s  %s\n", "benchmark", "shape",
                "dtype", "time", "GFLOP/s", "GB/s", "kernel");
  return buf;
}

std::string TableRow(const MicroResult& r) {
  char buf[512];
  if (!r.ok) {
    std::snprintf(buf, sizeof(buf), "%-30s %-22s %-5s %12s %10s %9s  FAILED: %s\n", r.name.c_str(),
                  r.shape.c_str(), r.dtype.empty() ? "-" : r.dtype.c_str(), "-", "-", "-",
                  r.error.c_str());
    return buf;
  }
  char gflops[32] = "-";
  if (r.flops_per_iter > 0) std::snprintf(gflops, sizeof(gflops), "%.1f", r.flops_per_s / 1e9);
  std::snprintf(buf, sizeof(buf), "%-30s %-22s %-5s %12s %10s %9.1f  %s\n", r.name.c_str(),
                r.shape.c_str(), r.dtype.empty() ? "-" : r.dtype.c_str(),
                FormatTime(r.time_s).c_str(), gflops, r.bytes_per_s / 1e9, r.impl.c_str());
  return buf;
}

}  // namespace

std::optional<MicroFormat> ParseMicroFormat(std::string_view s) {
  if (s == "table") return MicroFormat::kTable;
  if (s == "json") return MicroFormat::kJson;
  return std::nullopt;
}

Status SelectMicroBenchmarks(const std::string& filter, std::vector<MicroBenchSpec>* out) {
  out->clear();
  std::string pattern = filter;
  bool negate = false;
  if (!pattern.empty() && pattern[0] == '-') {
    negate = true;
    pattern.erase(0, 1);
  }
  std::regex re;
  try {
    re = std::regex(pattern.empty() ? std::string(".") : pattern);
  } catch (const std::regex_error& e) {
    return Status::InvalidInput("micro: --filter '" + filter +
                                "' is not a valid regex: " + e.what());
  }
  for (auto& spec : AllMicroBenchmarks()) {
    if (std::regex_search(spec.name, re) != negate) out->push_back(std::move(spec));
  }
  if (out->empty()) {
    return Status::InvalidInput("micro: --filter '" + filter +
                                "' matches no benchmark (try --list)");
  }
  return Status::Ok();
}

std::string FormatMicroTable(const std::vector<MicroResult>& results) {
  std::string out = TableHeader();
  for (const auto& r : results) out += TableRow(r);
  return out;
}

std::string FormatMicroJson(const std::vector<MicroResult>& results, const MicroOptions& opts) {
  const HostInfo host = CurrentHostInfo();
  nlohmann::json j;
  j["tool"] = "clusterbench micro";
  j["tool_version"] = ToolVersion();
  j["host"] = host.host;
  j["cpu_model"] = host.cpu_model;
  j["isa"] = host.isa;
  j["threads"] = host.threads;
  j["measured_at"] = IsoUtcNow();
  j["min_time_s"] = opts.min_time_s;
  j["repetitions"] = opts.repetitions;
  j["statistic"] = "median over repetitions (max also given)";
  auto& list = j["benchmarks"] = nlohmann::json::array();
  for (const auto& r : results) {
    nlohmann::json b;
    b["name"] = r.name;
    b["kind"] = r.kind;
    b["shape"] = r.shape;
    if (!r.dtype.empty()) b["dtype"] = r.dtype;
    if (r.kind == "matmul" || r.kind == "quant_gemv") {
      b["m"] = r.m;
      b["n"] = r.n;
      b["k"] = r.k;
      b["weight_copies"] = r.weight_copies;
    }
    b["status"] = r.ok ? "ok" : "failed";
    if (!r.ok) {
      b["error"] = r.error;
    } else {
      b["kernel"] = r.impl;
      b["repetitions"] = r.repetitions;
      b["iterations"] = r.iterations;
      b["time_s"] = r.time_s;
      b["bytes_per_iteration"] = r.bytes_per_iter;
      b["bytes_per_s"] = r.bytes_per_s;
      b["bytes_per_s_max"] = r.bytes_per_s_max;
      if (r.flops_per_iter > 0) {
        b["flops_per_iteration"] = r.flops_per_iter;
        b["flops_per_s"] = r.flops_per_s;
        b["flops_per_s_max"] = r.flops_per_s_max;
      }
    }
    list.push_back(std::move(b));
  }
  return j.dump(2) + "\n";
}

int RunMicroCommand(const MicroOptions& opts) {
  if (!(opts.min_time_s > 0) || !std::isfinite(opts.min_time_s)) {
    std::cerr << "clusterbench micro: --min-time must be > 0 seconds\n";
    return 2;
  }
  if (opts.repetitions < 1) {
    std::cerr << "clusterbench micro: --repetitions must be >= 1\n";
    return 2;
  }
  std::vector<MicroBenchSpec> specs;
  Status s = SelectMicroBenchmarks(opts.filter, &specs);
  if (!s.ok()) {
    std::cerr << "clusterbench " << s.message() << "\n";
    return s.ExitCode();
  }
  if (opts.list_only) {
    for (const auto& spec : specs) std::cout << spec.name << "\n";
    return 0;
  }
  const HostInfo host = CurrentHostInfo();
  std::cerr << "micro: " << host.cpu_model << ", oneDNN ISA " << host.isa << ", " << host.threads
            << " OpenMP thread(s); " << opts.repetitions
            << " repetition(s) of >= " << opts.min_time_s << " s each\n";
  if (opts.format == MicroFormat::kTable) {
    std::cout << TableHeader() << std::flush;
  }
  std::vector<MicroResult> results;
  s = RunMicroBenchmarks(specs, MicroRunConfig{opts.min_time_s, opts.repetitions}, &results,
                         [&](const MicroResult& r) {
                           if (opts.format == MicroFormat::kTable)
                             std::cout << TableRow(r) << std::flush;
                         });
  if (!s.ok()) {
    std::cerr << "clusterbench " << s.message() << "\n";
    return s.ExitCode();
  }
  if (opts.format == MicroFormat::kJson) std::cout << FormatMicroJson(results, opts);
  for (const auto& r : results) {
    if (!r.ok) return 1;
  }
  return 0;
}

}  // namespace cb
