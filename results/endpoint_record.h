#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/core/status.h"

namespace cb {

/// One measured request of an endpoint run as the client saw it (docs/endpoint.md). The
/// `serving.requests` of the record hold the requests that completed (`outcome` "ok"), in the
/// same order; this list holds every request issued or due.
struct EndpointRequestRecord {
  int64_t requested_prompt_len = 0;  ///< words of the prompt sent (synthetic: the target length)
  int64_t requested_output_len = 0;  ///< max_tokens asked for
  int64_t prompt_tokens = -1;        ///< the server's usage.prompt_tokens; -1 not given
  int64_t completion_tokens = -1;    ///< the server's usage.completion_tokens; -1 not given
  int64_t stream_chunks = 0;         ///< streamed chunks that carried generated text
  std::string finish_reason;         ///< "length", "stop", ... as the server said
  /// "ok", or the failure: "connect", "timeout", "stall", "tls", "transport" (the connection
  /// broke), "http_4xx"/"http_5xx" (the status), "truncated" (the stream ended without
  /// [DONE]), "malformed" (not an OpenAI chunk stream), "server_error" (an error object in
  /// the stream), "empty" (no generated text), "cancelled" (open when the run stopped early),
  /// "not_sent" (the run stopped first).
  std::string outcome = "ok";
  std::string error;  ///< what the failure said, shortened
};

/// The `endpoint` section of a run against an OpenAI-compatible server (schema 1.2, optional).
struct EndpointRecord {
  std::string url;              ///< the base URL, without credentials
  std::string api;              ///< "completions" or "chat"
  std::string requested_model;  ///< the `model` sent
  std::string server_model;     ///< the model the server said it served (responses' `model`)
  std::vector<std::string> served_models;  ///< what GET /models listed
  std::string prompts;                     ///< "synthetic" or "dataset"
  std::string dataset_name, dataset_format, dataset_sha256;
  int64_t dataset_entries = 0;
  bool ignore_eos = false;    ///< ignore_eos/min_tokens were sent (the server accepted them)
  std::string api_key_env;    ///< the variable the key came from (never the key)
  std::string length_source;  ///< "usage" (the server's counts) or "stream" (chunks counted)
  double connect_timeout_s = 0, request_timeout_s = 0, stall_timeout_s = 0, run_timeout_s = 0;
  double max_failure_ratio = 0;
  int64_t requests_issued = 0, requests_ok = 0;
  int64_t requests_failed = 0;              ///< sent and failed (the failure rule counts these)
  int64_t requests_cancelled = 0;           ///< sent, then cancelled when the run stopped early
  int64_t requests_not_sent = 0;            ///< due after the run stopped
  std::map<std::string, int64_t> failures;  ///< outcome -> count (not "ok")
  bool stopped_early = false;               ///< the run stopped once its failures made it invalid
  int64_t warmup_failed = 0;
  int64_t max_in_flight = 0;      ///< most requests open at once
  double client_cpu_s = 0;        ///< CPU time of the client process over the measured pass
  double client_cpu_ratio = 0;    ///< client_cpu_s / the pass's wall time (1 = one core)
  std::string declared_hardware;  ///< catalog entry the user declared (--device/--system)
  int64_t declared_devices = 0;
  std::vector<std::string> notes;
  std::vector<EndpointRequestRecord> requests;
};

nlohmann::json EndpointRecordToJson(const EndpointRecord& e);
Status EndpointRecordFromJson(const nlohmann::json& j, const std::string& origin,
                              EndpointRecord* out);

}  // namespace cb
