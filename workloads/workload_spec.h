#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "harness/core/dtype.h"
#include "workloads/cost_overrides.h"
#include "workloads/deployment.h"
#include "workloads/endpoint_spec.h"
#include "workloads/model_spec.h"
#include "workloads/serving_spec.h"

namespace cb {

/// One fully expanded benchmark: what to run, where, and how to measure it.
struct WorkloadSpec {
  std::string model_ref;  ///< as the user gave it: preset name or file path
  ModelSpec model;        ///< resolved
  std::string backend = "cpu";
  std::string scenario = "offline";
  DType dtype = DType::kBF16;
  std::optional<DType> kv_dtype;  ///< the KV cache's element type; unset: DefaultKvDType(dtype)
  int64_t batch = 1;
  int64_t prompt_len = 128;
  int64_t gen_len = 32;
  int layers = 0;  ///< decoder layers actually run; 0 = all of the model's
  uint64_t seed = 1;
  int repetitions = 5;
  int warmup = 1;
  int verify_len = 0;  ///< teacher-forced tokens checked against the reference; 0 = auto
  bool verify = true;
  bool op_breakdown = false;  ///< time one extra step op by op (harness/op_breakdown.h)
  CostOverrides cost;         ///< cost-model inputs given in the suite or on the command line
  ServingSpec serving;        ///< single-stream/server/sweep settings and validity rules
  DeploymentSpec deployment;  ///< simulated backend: system, devices and their layout
                              ///< (endpoint: the declared system and device count)
  EndpointSpec endpoint;      ///< endpoint backend: API, prompts, timeouts, energy source

  DType KvDType() const { return kv_dtype.value_or(DefaultKvDType(dtype)); }
  int LayersRun() const { return layers > 0 ? layers : static_cast<int>(model.num_layers); }
  bool Extrapolated() const { return LayersRun() < model.num_layers; }
};

}  // namespace cb
