#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "workloads/json_fields.h"
#include "workloads/workload_spec.h"

namespace cb {

/// Suite fields of the endpoint backend (docs/endpoint.md); flags of the same names with '-'.
inline constexpr const char* kEndpointFields[] = {"api",
                                                  "served_model",
                                                  "api_key_env",
                                                  "dataset",
                                                  "dataset_format",
                                                  "ignore_eos",
                                                  "connect_timeout",
                                                  "request_timeout",
                                                  "stall_timeout",
                                                  "run_timeout",
                                                  "max_failure_ratio",
                                                  "ca_file",
                                                  "insecure_tls",
                                                  "energy_metrics",
                                                  "energy_metric",
                                                  "device"};

/// Reads the endpoint fields of a suite entry; an endpoint field in a workload of another
/// backend is an error naming the field.
Status ReadEndpointFields(const nlohmann::json& obj, const FieldReader& f,
                          const std::string& backend, EndpointSpec* out);

/// The model of an endpoint workload whose --model is no preset or model file: the served
/// model's name, its shape unknown (family "external", context 0 = not checked here).
ModelSpec ExternalModel(const std::string& name);

/// Checks an endpoint workload without touching the network: the URL, the API, timeouts,
/// the failure ratio, the scenario (single-stream, server, or a sweep of server points) and
/// the deployment fields (only system and devices declare hardware). Errors name `where` and
/// the field. A no-op for other backends.
Status ValidateEndpoint(const WorkloadSpec& w, const std::string& where);

}  // namespace cb
