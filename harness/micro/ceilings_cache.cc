#include "harness/micro/ceilings_cache.h"

#include <cctype>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "results/atomic_file.h"

namespace cb {
namespace {

constexpr DType kAllDTypes[] = {DType::kF32, DType::kBF16, DType::kF16, DType::kFP8, DType::kInt8};

bool PositiveFinite(double v) { return std::isfinite(v) && v > 0; }

std::string Describe(const HostInfo& h) {
  return h.host + ", " + h.cpu_model + ", " + h.isa + ", " + std::to_string(h.threads) +
         " thread(s)";
}

}  // namespace

std::string CeilingsCachePath(const std::string& results_dir, const std::string& key) {
  std::string safe = key.empty() ? "localhost" : key;
  for (char& ch : safe) {
    const bool ok =
        std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.';
    if (!ok) ch = '_';
  }
  if (safe == "." || safe == "..") safe = "_" + safe;
  return (std::filesystem::path(results_dir) / "ceilings" / (safe + ".json")).string();
}

std::string CeilingsCacheKey(const HostInfo& host) {
  return (host.host.empty() ? "localhost" : host.host) + "-" + std::to_string(host.threads) + "t";
}

std::string CeilingsCacheJson(const Ceilings& c, const HostInfo& host) {
  nlohmann::json j;
  j["host"] = host.host;
  j["cpu_model"] = host.cpu_model;
  j["isa"] = host.isa;
  j["threads"] = host.threads;
  j["measured_at"] = c.measured_at;
  j["tool_version"] = ToolVersion();
  auto& mm = j["matmul_flops_per_s"] = nlohmann::json::object();
  for (DType t : kAllDTypes) {
    const double v = c.matmul_flops_per_s[static_cast<int>(t)];
    if (v > 0) mm[std::string(DTypeName(t))] = v;
  }
  j["mem_read_bytes_per_s"] = c.mem_read_bytes_per_s;
  j["statistic"] = "best repetition (max over repetitions, and over shapes for matmul)";
  return j.dump(2) + "\n";
}

Status ParseCeilingsCache(const std::string& text, Ceilings* c, HostInfo* host) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidInput("not valid JSON");
  if (!j.is_object()) return Status::InvalidInput("not a JSON object");
  auto str = [&](const char* key, std::string* out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) {
      return Status::InvalidInput(std::string("field '") + key + "' missing or not a string");
    }
    *out = it->get<std::string>();
    return Status::Ok();
  };
  Ceilings parsed;
  HostInfo h;
  CB_RETURN_IF_ERROR(str("host", &h.host));
  CB_RETURN_IF_ERROR(str("cpu_model", &h.cpu_model));
  CB_RETURN_IF_ERROR(str("isa", &h.isa));
  CB_RETURN_IF_ERROR(str("measured_at", &parsed.measured_at));
  auto threads = j.find("threads");
  if (threads == j.end() || !threads->is_number_integer() || threads->get<int64_t>() < 1) {
    return Status::InvalidInput("field 'threads' missing or not a positive integer");
  }
  h.threads = threads->get<int>();
  auto mem = j.find("mem_read_bytes_per_s");
  if (mem == j.end() || !mem->is_number() || !PositiveFinite(mem->get<double>())) {
    return Status::InvalidInput("field 'mem_read_bytes_per_s' missing or not a positive number");
  }
  parsed.mem_read_bytes_per_s = mem->get<double>();
  auto mm = j.find("matmul_flops_per_s");
  if (mm == j.end() || !mm->is_object()) {
    return Status::InvalidInput("field 'matmul_flops_per_s' missing or not an object");
  }
  for (auto it = mm->begin(); it != mm->end(); ++it) {
    const auto dt = ParseDType(it.key());
    if (!dt) return Status::InvalidInput("matmul_flops_per_s: unknown dtype '" + it.key() + "'");
    if (!it->is_number() || !PositiveFinite(it->get<double>())) {
      return Status::InvalidInput("matmul_flops_per_s." + it.key() + " is not a positive number");
    }
    parsed.matmul_flops_per_s[static_cast<int>(*dt)] = it->get<double>();
  }
  if (parsed.matmul_flops_per_s[static_cast<int>(DType::kF32)] <= 0) {
    return Status::InvalidInput("matmul_flops_per_s.fp32 missing");
  }
  *c = parsed;
  *host = h;
  return Status::Ok();
}

Status LoadOrMeasureCeilingsWith(const std::string& results_dir, bool remeasure,
                                 const HostInfo& host, const CeilingsMeasureFn& measure,
                                 Ceilings* out) {
  const std::string path = CeilingsCachePath(results_dir, CeilingsCacheKey(host));
  if (!remeasure && std::filesystem::exists(path)) {
    std::string text;
    Status s = ReadFile(path, &text);
    Ceilings cached;
    HostInfo cached_host;
    if (s.ok()) s = ParseCeilingsCache(text, &cached, &cached_host);
    if (!s.ok()) {
      std::cerr << "warning: ceilings cache " << path << " is unreadable (" << s.message()
                << "); re-measuring\n";
    } else if (cached_host.host != host.host || cached_host.cpu_model != host.cpu_model ||
               cached_host.isa != host.isa || cached_host.threads != host.threads) {
      std::cerr << "ceilings cache " << path << " was measured on " << Describe(cached_host)
                << "; this is " << Describe(host) << "; re-measuring\n";
    } else {
      cached.source = "measured by clusterbench micro on " + cached_host.host + " at " +
                      cached.measured_at + ", cached in " + path;
      *out = cached;
      return Status::Ok();
    }
  } else if (remeasure) {
    std::cerr << "ceilings: re-measuring as requested\n";
  } else {
    std::cerr << "ceilings: no cache at " << path << "; measuring (about 30 s)\n";
  }

  Ceilings measured;
  CB_RETURN_IF_ERROR(measure(&measured));
  if (measured.measured_at.empty()) measured.measured_at = IsoUtcNow();
  Status w = WriteFileAtomically(path, CeilingsCacheJson(measured, host));
  if (w.ok()) {
    measured.source = "measured by clusterbench micro on " + host.host + " at " +
                      measured.measured_at + ", cached in " + path;
  } else {
    std::cerr << "warning: cannot cache ceilings: " << w.message() << "\n";
    measured.source = "measured by clusterbench micro on " + host.host + " at " +
                      measured.measured_at + " (not cached: " + w.message() + ")";
  }
  *out = measured;
  return Status::Ok();
}

}  // namespace cb
