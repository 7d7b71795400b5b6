#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "harness/core/status.h"

namespace cb {

/// `run`'s flags of the endpoint backend (docs/endpoint.md); each is the suite field of the
/// same name with '_' for '-' (--no-ignore-eos sets ignore_eos false, --insecure insecure_tls).
struct EndpointFlags {
  std::string api, served_model, api_key_env, dataset, dataset_format, ca_file, energy_metrics,
      energy_metric, device;
  double connect_timeout = 0, request_timeout = 0, stall_timeout = 0, run_timeout = 0,
         max_failure_ratio = 0;
  bool no_ignore_eos = false, insecure = false;
  std::map<std::string, CLI::Option*> given;  ///< suite field -> its option
};

void AddEndpointFlags(CLI::App* cmd, EndpointFlags* f);

/// Adds the flags the user gave to `overrides` under their suite field names.
void EndpointFlagsToOverrides(const EndpointFlags& f, nlohmann::json* overrides);

}  // namespace cb
