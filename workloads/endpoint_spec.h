#pragma once

#include <string>

namespace cb {

/// Settings of a run against an OpenAI-compatible server (`--backend endpoint:URL`): suite
/// fields and flags of the same names (docs/endpoint.md). Only endpoint workloads may set them.
struct EndpointSpec {
  std::string api = "completions";  ///< "completions" or "chat"
  std::string served_model;         ///< the `model` sent; empty: the workload's model name
  std::string api_key_env;          ///< environment variable holding the API key
  std::string dataset;              ///< prompts replayed from this file; empty: synthetic prompts
  std::string dataset_format;       ///< "sharegpt" or "jsonl"; empty: from the file's content
  bool ignore_eos = true;           ///< ask for exactly the requested output lengths
  double connect_timeout = 5;       ///< s
  double request_timeout = 300;     ///< s, one whole request
  double stall_timeout = 60;        ///< s without a byte
  double run_timeout = 0;           ///< s, the whole measured pass; 0: derived from the load
  double max_failure_ratio = 0.01;  ///< more failed requests than this share: invalid
  std::string ca_file;              ///< TLS trust
  bool insecure_tls = false;        ///< TLS without certificate verification
  std::string energy_metrics;       ///< the serving hardware's Prometheus exporter (metrics URL)
  std::string energy_metric;        ///< the series read there; empty: DCGM's energy counter, ...
  std::string device;               ///< catalog device the server runs on, as declared (--device)
};

}  // namespace cb
