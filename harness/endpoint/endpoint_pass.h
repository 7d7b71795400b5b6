#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backends/endpoint/openai_protocol.h"
#include "backends/endpoint/stream_client.h"

namespace cb {

/// One request of an endpoint run, its body built before the pass.
struct EndpointRequest {
  double arrival_s = 0;    ///< scheduled arrival from the pass's start (closed loop: when issued)
  int64_t prompt_len = 0;  ///< requested: the prompt's words
  int64_t output_len = 0;  ///< requested: max_tokens
  std::string body;
};

/// What happened to one request. Times are seconds from the pass's start on ClientNow().
struct EndpointOutcome {
  double sent_s = -1;    ///< handed to the client (open loop: at or just after arrival_s)
  double end_s = -1;     ///< the transfer ended
  StreamOutcome stream;  ///< its times are from the pass's start too
  TransferResult transfer;
  std::string outcome = "not_sent";  ///< "ok" or a failure (EndpointRequestRecord::outcome)
  std::string error;
};

/// The failure a finished transfer amounts to, or "ok" (docs/endpoint.md, "Failures").
std::string ClassifyOutcome(const TransferResult& t, const StreamOutcome& s, std::string* error);

struct EndpointPassConfig {
  ApiKind api = ApiKind::kCompletions;
  std::string url;            ///< where requests go (base + route)
  int64_t concurrency = 0;    ///< closed loop: requests kept in flight; 0: open loop
  double deadline_s = 0;      ///< from the pass's start: open requests fail, the rest is not sent
  int64_t max_failures = -1;  ///< stop once more requests than this failed (-1: never)
  bool (*cancelled)() = nullptr;  ///< polled at least every 50 ms: true ends the pass
};

struct EndpointPassResult {
  std::vector<EndpointOutcome> outcomes;  ///< per request
  int64_t max_in_flight = 0;
  int64_t failed = 0;
  bool stopped_early = false;  ///< max_failures was exceeded
  bool deadline_passed = false;
  double wall_s = 0, cpu_s = 0;  ///< the pass's wall time and this process's CPU time in it
};

/// Issues `requests` through `client` as the harness owns time: open loop at their scheduled
/// arrivals (a request due is sent at once, without waiting for others), closed loop keeping
/// `concurrency` in flight (the next issued when one ends, its arrival that moment). Every
/// response's events are timed by the client on arrival. Returns kCancelled when `cancelled`
/// says so (open transfers are cancelled, nothing is kept).
Status RunEndpointPass(StreamClient& client, const EndpointPassConfig& cfg,
                       std::vector<EndpointRequest>* requests, EndpointPassResult* out);

}  // namespace cb
