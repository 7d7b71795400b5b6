#include "harness/cli/endpoint_flags.h"

namespace cb {

void AddEndpointFlags(CLI::App* cmd, EndpointFlags* f) {
  const std::string group = "Endpoints: --backend endpoint:URL (docs/endpoint.md)";
  auto& g = f->given;
  auto add = [&](const char* field, const char* flag, auto* value, const char* help) {
    g[field] = cmd->add_option(flag, *value, help)->group(group);
  };
  add("api", "--api", &f->api, "completions (default: /v1/completions) or chat");
  add("served_model", "--served-model", &f->served_model,
      "the model name sent to the server (default: --model)");
  add("api_key_env", "--api-key-env", &f->api_key_env,
      "environment variable holding the API key (sent as a Bearer token; never a flag)");
  add("dataset", "--dataset", &f->dataset,
      "replay prompts from a ShareGPT JSON or a JSONL file of {prompt, output_len}");
  add("dataset_format", "--dataset-format", &f->dataset_format,
      "sharegpt or jsonl (default: from the file's first character)");
  g["ignore_eos"] = cmd->add_flag("--no-ignore-eos", f->no_ignore_eos,
                                  "do not send ignore_eos/min_tokens (outputs may end early)")
                        ->group(group);
  add("connect_timeout", "--connect-timeout", &f->connect_timeout,
      "seconds to connect (default 5)");
  add("request_timeout", "--request-timeout", &f->request_timeout,
      "seconds one whole request may take (default 300)");
  add("stall_timeout", "--stall-timeout", &f->stall_timeout,
      "fail a request after this many seconds without a byte (default 60)");
  add("run_timeout", "--run-timeout", &f->run_timeout,
      "seconds the measured pass may take (default: from the load and the request timeout)");
  add("max_failure_ratio", "--max-failure-ratio", &f->max_failure_ratio,
      "more failed requests than this share make the run invalid (default 0.01)");
  add("ca_file", "--ca-file", &f->ca_file, "TLS: trust these CA certificates (PEM)");
  g["insecure_tls"] =
      cmd->add_flag("--insecure", f->insecure, "TLS: do not verify the server's certificate")
          ->group(group);
  add("energy_metrics", "--energy-metrics", &f->energy_metrics,
      "the serving hardware's Prometheus exporter, e.g. http://gpu-node:9400/metrics "
      "(DCGM-exporter): energy measured there");
  add("energy_metric", "--energy-metric", &f->energy_metric,
      "series to read there: an energy counter or a power gauge (default: "
      "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, else DCGM_FI_DEV_POWER_USAGE)");
  add("device", "--device", &f->device,
      "catalog device the server runs on (clusterbench cost prices and models it; or --system)");
}

void EndpointFlagsToOverrides(const EndpointFlags& f, nlohmann::json* overrides) {
  auto& o = *overrides;
  auto given = [&](const char* field) { return f.given.at(field)->count() > 0; };
  const std::pair<const char*, const std::string*> strings[] = {
      {"api", &f.api},
      {"served_model", &f.served_model},
      {"api_key_env", &f.api_key_env},
      {"dataset", &f.dataset},
      {"dataset_format", &f.dataset_format},
      {"ca_file", &f.ca_file},
      {"energy_metrics", &f.energy_metrics},
      {"energy_metric", &f.energy_metric},
      {"device", &f.device}};
  for (const auto& [k, v] : strings) {
    if (given(k)) o[k] = *v;
  }
  const std::pair<const char*, double> doubles[] = {{"connect_timeout", f.connect_timeout},
                                                    {"request_timeout", f.request_timeout},
                                                    {"stall_timeout", f.stall_timeout},
                                                    {"run_timeout", f.run_timeout},
                                                    {"max_failure_ratio", f.max_failure_ratio}};
  for (const auto& [k, v] : doubles) {
    if (given(k)) o[k] = v;
  }
  if (f.no_ignore_eos) o["ignore_eos"] = false;
  if (f.insecure) o["insecure_tls"] = true;
}

}  // namespace cb
