#include "harness/endpoint/endpoint_fields.h"

#include <cmath>

#include "backends/endpoint/endpoint_url.h"
#include "backends/endpoint/openai_protocol.h"

namespace cb {

using nlohmann::json;

Status ReadEndpointFields(const json& obj, const FieldReader& f, const std::string& backend,
                          EndpointSpec* e) {
  if (!IsEndpointBackend(backend)) {
    for (const char* key : kEndpointFields) {
      if (obj.contains(key)) {
        return f.Error(key,
                       "only for --backend endpoint:URL (an OpenAI-compatible server); "
                       "this workload's backend is " +
                           backend);
      }
    }
    return Status::Ok();
  }
  CB_RETURN_IF_ERROR(f.String("api", false, &e->api));
  CB_RETURN_IF_ERROR(f.String("served_model", false, &e->served_model));
  CB_RETURN_IF_ERROR(f.String("api_key_env", false, &e->api_key_env));
  CB_RETURN_IF_ERROR(f.String("dataset", false, &e->dataset));
  CB_RETURN_IF_ERROR(f.String("dataset_format", false, &e->dataset_format));
  CB_RETURN_IF_ERROR(f.Bool("ignore_eos", false, &e->ignore_eos));
  CB_RETURN_IF_ERROR(f.Double("connect_timeout", false, &e->connect_timeout));
  CB_RETURN_IF_ERROR(f.Double("request_timeout", false, &e->request_timeout));
  CB_RETURN_IF_ERROR(f.Double("stall_timeout", false, &e->stall_timeout));
  CB_RETURN_IF_ERROR(f.Double("run_timeout", false, &e->run_timeout));
  CB_RETURN_IF_ERROR(f.Double("max_failure_ratio", false, &e->max_failure_ratio));
  CB_RETURN_IF_ERROR(f.String("ca_file", false, &e->ca_file));
  CB_RETURN_IF_ERROR(f.Bool("insecure_tls", false, &e->insecure_tls));
  CB_RETURN_IF_ERROR(f.String("energy_metrics", false, &e->energy_metrics));
  CB_RETURN_IF_ERROR(f.String("energy_metric", false, &e->energy_metric));
  return f.String("device", false, &e->device);
}

ModelSpec ExternalModel(const std::string& name) {
  ModelSpec m;
  m.name = name;
  m.family = "external";
  m.source = "served by the endpoint; its shape is the server's (not a clusterbench preset)";
  m.num_layers = 0;
  m.max_context = 0;
  return m;
}

Status ValidateEndpoint(const WorkloadSpec& w, const std::string& where) {
  if (!IsEndpointBackend(w.backend)) return Status::Ok();
  auto bad = [&](const char* field, const std::string& what) {
    return Status::InvalidInput(where + ": field '" + field + "': " + what);
  };
  EndpointUrl url;
  CB_RETURN_IF_ERROR(ParseEndpointBackend(w.backend, where, &url));
  const EndpointSpec& e = w.endpoint;
  ApiKind api;
  if (!ParseApiName(e.api, &api)) {
    return bad("api", "unknown API '" + e.api + "'; allowed values: completions, chat");
  }
  const std::pair<const char*, double> timeouts[] = {{"connect_timeout", e.connect_timeout},
                                                     {"request_timeout", e.request_timeout},
                                                     {"stall_timeout", e.stall_timeout}};
  for (const auto& [name, v] : timeouts) {
    if (!(v > 0) || !std::isfinite(v)) return bad(name, "must be above 0 (seconds)");
  }
  if (!(e.run_timeout >= 0) || !std::isfinite(e.run_timeout)) {
    return bad("run_timeout", "must not be negative (seconds; 0 = derived from the load)");
  }
  if (!(e.max_failure_ratio >= 0 && e.max_failure_ratio <= 1)) {
    return bad("max_failure_ratio", "must be in [0, 1] (the share of requests allowed to fail)");
  }
  if (!e.dataset_format.empty() && e.dataset_format != "sharegpt" && e.dataset_format != "jsonl") {
    return bad("dataset_format",
               "unknown format '" + e.dataset_format + "'; allowed values: sharegpt, jsonl");
  }
  if (!e.energy_metrics.empty() && !e.energy_metrics.starts_with("http://") &&
      !e.energy_metrics.starts_with("https://")) {
    return bad("energy_metrics", "'" + e.energy_metrics +
                                     "' is not an http(s) URL of a Prometheus exporter's metrics");
  }
  if (e.api_key_env.find('=') != std::string::npos ||
      e.api_key_env.find(' ') != std::string::npos) {
    return bad("api_key_env",
               "is the NAME of an environment variable holding the key, not the key");
  }
  const DeploymentSpec& d = w.deployment;
  if (d.tp > 0 || d.dp > 0 || d.ep > 0 || !d.disaggregate.empty() || d.mtp > 0 ||
      d.redundant_experts > 0 || d.overlap) {
    return bad("tp",
               "the layout of an endpoint's devices is the server's; declare its hardware "
               "with device (or system) and devices only");
  }
  if (!e.device.empty() && !d.system.empty()) {
    return bad("device", "give device or system, not both (a system names its device)");
  }
  if (w.scenario == "offline") {
    return bad("scenario",
               "an endpoint runs single-stream, server or sweep (server points); "
               "offline steps need the op stream of a local backend");
  }
  if (w.scenario == "sweep") {
    const ServingSpec& s = w.serving;
    const std::string point = !s.sweep_scenario.empty() ? s.sweep_scenario
                              : s.sweep_batches.empty() ? "server"
                                                        : "offline";
    if (point != "server") {
      return bad("sweep_scenario",
                 "an endpoint sweep runs server points: give rates, or batches "
                 "with sweep_scenario server and concurrency (each batch is "
                 "then the concurrency)");
    }
    if (!s.sweep_batches.empty() && s.concurrency <= 0) {
      return bad("concurrency",
                 "an endpoint sweep over batches is a sweep over concurrency: "
                 "give concurrency (each point's batch becomes its concurrency)");
    }
  }
  return Status::Ok();
}

}  // namespace cb
