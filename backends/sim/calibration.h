#pragma once

#include <string>
#include <vector>

#include "backends/sim/perf_model.h"

namespace cb::sim {

/// One measured op of a real backend: its class, cost, M (rows) and seconds.
struct OpSample {
  OpClass cls = OpClass::kElementwise;
  OpCost cost;
  double rows = 1;
  DType dtype = DType::kBF16;
  double seconds = 0;
};

/// Fitted parameters of one catalog device, stored next to the catalog in
/// backends/sim/calibration/<device id>.json with the date and source of the measurements.
struct Calibration {
  std::string device;  ///< catalog id
  std::string date;    ///< ISO-8601 UTC
  std::string source;  ///< e.g. "cpu backend on host X, 2 threads, per-op times of ..."
  std::string model_version = kModelVersion;
  double peak_flops[kDTypeCount] = {0, 0, 0};  ///< measured ceilings where > 0
  double mem_bandwidth = 0;                    ///< measured where > 0
  Efficiency eff;
  double fit_median_abs_error = 0;        ///< over the fitted ops
  double held_out_median_abs_error = -1;  ///< tokens/s error on held-out shapes, -1 unknown
  std::vector<std::string> held_out;      ///< one line per held-out shape
};

std::string CalibrationDir();  ///< DataDir()/backends/sim/calibration
std::string CalibrationPath(const std::string& dir, const std::string& device);
/// kNotFound-like: returns false (and Ok) when there is no file.
Status LoadCalibration(const std::string& path, Calibration* out, bool* found);
Status SaveCalibration(const std::string& path, const Calibration& c);
/// Applies a calibration to a model: measured peaks replace catalog ones, efficiencies replace.
void ApplyCalibration(const Calibration& c, DeviceModel* m);

/// Fits the efficiency parameters to per-op samples by minimising the squared log error of
/// OpSeconds (coordinate descent over log-parameters). `m` gives peaks; its efficiencies are the
/// starting point and receive the result. Returns the median absolute relative error.
double FitEfficiency(const std::vector<OpSample>& samples, DeviceModel* m);

}  // namespace cb::sim
