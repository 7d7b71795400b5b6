#include "backends/sim/calibration.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "harness/core/text_file.h"
#include "workloads/model_spec.h"

namespace cb::sim {

using nlohmann::json;

std::string CalibrationDir() { return DataDir() + "/backends/sim/calibration"; }

std::string CalibrationPath(const std::string& dir, const std::string& device) {
  return dir + "/" + device + ".json";
}

namespace {

json EffToJson(const Efficiency& e) {
  return {{"matmul_eff", e.matmul_eff},
          {"matmul_m_half", e.matmul_m_half},
          {"matmul_mem_eff", e.matmul_mem_eff},
          {"attention_eff", e.attention_eff},
          {"attention_mem_eff", e.attention_mem_eff},
          {"elementwise_mem_eff", e.elementwise_mem_eff},
          {"launch_s", e.launch_s}};
}

double* Param(Efficiency& e, int i) {
  double* p[] = {&e.matmul_eff,        &e.matmul_m_half,       &e.matmul_mem_eff, &e.attention_eff,
                 &e.attention_mem_eff, &e.elementwise_mem_eff, &e.launch_s};
  return p[i];
}
constexpr int kParams = 7;
constexpr const char* kParamNames[kParams] = {
    "matmul_eff",        "matmul_m_half",       "matmul_mem_eff", "attention_eff",
    "attention_mem_eff", "elementwise_mem_eff", "launch_s"};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

namespace {

/// A number, or {"value": number, "source": "..."} (the source goes to `sources[name]`).
double SourcedNumber(const json& v, const std::string& name,
                     std::map<std::string, std::string>* sources) {
  if (v.is_object()) {
    (*sources)[name] = v.at("source").get<std::string>();
    return v.at("value").get<double>();
  }
  return v.get<double>();
}

void ReadEfficiency(const json& e, const std::string& fallback_source, Efficiency* out) {
  for (int i = 0; i < kParams; ++i) {
    if (!e.contains(kParamNames[i])) continue;
    *Param(*out, i) = SourcedNumber(e.at(kParamNames[i]), kParamNames[i], &out->sources);
    if (!out->sources.count(kParamNames[i])) out->sources[kParamNames[i]] = fallback_source;
  }
  if (!e.contains("matmul_by_dtype")) return;
  for (const auto& [name, fields] : e.at("matmul_by_dtype").items()) {
    const std::optional<DType> dt = ParseDType(name);
    if (!dt) throw std::runtime_error("efficiency.matmul_by_dtype: unknown dtype '" + name + "'");
    MatmulEfficiency me = out->Matmul(*dt);
    const std::pair<const char*, double*> f[] = {
        {"matmul_eff", &me.eff}, {"matmul_m_half", &me.m_half}, {"matmul_mem_eff", &me.mem_eff}};
    for (const auto& [key, dst] : f) {
      if (fields.contains(key))
        *dst = SourcedNumber(fields.at(key), name + "." + key, &out->sources);
    }
    out->matmul_by_dtype[*dt] = me;
  }
}

}  // namespace

Status LoadCalibration(const std::string& path, Calibration* out, bool* found) {
  *found = false;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::Ok();
  std::string text;
  CB_RETURN_IF_ERROR(ReadTextFile(path, &text));
  try {
    const json j = json::parse(text);
    Calibration c;
    c.device = j.at("device").get<std::string>();
    c.date = j.at("date").get<std::string>();
    c.source = j.at("source").get<std::string>();
    c.model_version = j.value("model_version", std::string(kModelVersion));
    if (j.contains("peak_flops")) {
      for (const auto& [name, v] : j.at("peak_flops").items()) {
        if (const std::optional<DType> dt = ParseDType(name)) {
          c.peak_flops[static_cast<int>(*dt)] = v.get<double>();
        }
      }
    }
    c.mem_bandwidth = j.value("mem_bandwidth_bytes_per_s", 0.0);
    ReadEfficiency(j.at("efficiency"), "calibrated " + c.date + ": " + c.source, &c.eff);
    c.eff.source = (j.contains("peak_flops") ? "calibrated " : "public kernel figures, ") + c.date +
                   ": " + c.source;
    c.fit_median_abs_error = j.value("fit_median_abs_error", 0.0);
    c.held_out_median_abs_error = j.value("held_out_median_abs_error", -1.0);
    if (j.contains("held_out")) c.held_out = j.at("held_out").get<std::vector<std::string>>();
    *out = c;
  } catch (const std::exception& e) {
    return Status::InvalidInput(path + ": " + e.what());
  }
  *found = true;
  return Status::Ok();
}

Status SaveCalibration(const std::string& path, const Calibration& c) {
  json j = {{"device", c.device},
            {"date", c.date},
            {"source", c.source},
            {"model_version", c.model_version},
            {"peak_flops",
             {{"bf16", c.peak_flops[static_cast<int>(DType::kBF16)]},
              {"fp32", c.peak_flops[static_cast<int>(DType::kF32)]}}},
            {"mem_bandwidth_bytes_per_s", c.mem_bandwidth},
            {"efficiency", EffToJson(c.eff)},
            {"fit_median_abs_error", c.fit_median_abs_error},
            {"held_out_median_abs_error", c.held_out_median_abs_error},
            {"held_out", c.held_out}};
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) return Status::Internal("cannot write " + tmp);
    out << j.dump(2) << "\n";
    if (!out) return Status::Internal("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::Internal("cannot rename " + tmp + " to " + path);
  }
  return Status::Ok();
}

void ApplyCalibration(const Calibration& c, DeviceModel* m) {
  for (int d = 0; d < kDTypeCount; ++d) {
    if (c.peak_flops[d] > 0) m->peak_flops[d] = c.peak_flops[d];
  }
  if (c.mem_bandwidth > 0) m->mem_bandwidth = c.mem_bandwidth;
  m->eff = c.eff;
  m->sources.push_back("efficiencies: " + c.eff.source);
  NormalizeEfficiencies(m);
}

double FitEfficiency(const std::vector<OpSample>& samples, DeviceModel* m) {
  auto loss = [&](const DeviceModel& mm) {
    double l = 0;
    for (const OpSample& s : samples) {
      const double t = OpSeconds(mm, s.cls, s.cost, s.rows, s.dtype);
      const double r = std::log(t / s.seconds);
      l += r * r;
    }
    return l;
  };
  // Bounds keep each parameter meaningful. Efficiencies may exceed 1: they are relative to the
  // peaks given (a ceiling measured on a busy shared host can be below what a kernel reaches).
  const double lo[kParams] = {1e-3, 1e-2, 1e-3, 1e-3, 1e-3, 1e-3, 1e-8};
  const double hi[kParams] = {4, 1e5, 4, 4, 4, 4, 1e-2};
  double best = loss(*m);
  for (double step = 1.0; step > 1e-4; step *= 0.5) {
    bool improved = true;
    for (int iter = 0; iter < 50 && improved; ++iter) {
      improved = false;
      for (int i = 0; i < kParams; ++i) {
        for (double dir : {1.0, -1.0}) {
          DeviceModel trial = *m;
          double* p = Param(trial.eff, i);
          *p = std::clamp(*p * std::exp(dir * step), lo[i], hi[i]);
          const double l = loss(trial);
          if (l < best - 1e-12) {
            best = l;
            *m = trial;
            improved = true;
          }
        }
      }
    }
  }
  std::vector<double> err;
  for (const OpSample& s : samples) {
    err.push_back(std::abs(OpSeconds(*m, s.cls, s.cost, s.rows, s.dtype) / s.seconds - 1));
  }
  return Median(err);
}

}  // namespace cb::sim
