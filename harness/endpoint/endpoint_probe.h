#pragma once

#include <string>
#include <vector>

#include "backends/endpoint/stream_client.h"
#include "harness/endpoint/endpoint_target.h"
#include "workloads/workload_spec.h"

namespace cb {

/// What asking the server before the run found (GET BASE/models).
struct ProbeResult {
  bool ok = false;         ///< false: the run cannot go on; `failure` and `message` say why
  bool cancelled = false;  ///< Ctrl-C while waiting
  std::string failure;     ///< an outcome name ("connect", "http_401", "model", ...)
  std::string message;     ///< for the run's status message
  std::string model;       ///< the model name to send
  std::vector<std::string> served_models;
  std::vector<std::string> notes;
};

/// Asks the server which models it serves, within the client's connect timeout plus at most
/// 30 s: an unreachable server, a refused key or a model it does not serve end the run here
/// (recorded as invalid); a server without /models is noted and the run goes on. The model
/// sent is --served-model, else the workload's model name, else (no such model, and the server
/// serves exactly one) the server's one model, with a note.
ProbeResult ProbeEndpoint(StreamClient& client, const WorkloadSpec& w, const EndpointTarget& t);

}  // namespace cb
