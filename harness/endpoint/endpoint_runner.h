#pragma once

#include "harness/endpoint/endpoint_target.h"
#include "harness/runner.h"
#include "results/run_record.h"

namespace cb {

/// Runs a single-stream or server workload against an OpenAI-compatible server
/// (docs/endpoint.md): the probe (reachable, key accepted, model served), warm-up requests,
/// one measured pass timed by the client from each request's scheduled arrival, then the same
/// serving metrics and validity rules as a local run (harness/scenarios), plus inter-token
/// latencies, failure counts and the `endpoint` section. More failed requests than
/// max_failure_ratio allows make the run invalid (the pass stops as soon as that is certain).
/// Returns non-OK only for cancellation; anything the server does is recorded.
Status RunEndpoint(const WorkloadSpec& w, const EndpointTarget& t, const RunnerOptions& opts,
                   RunRecord* rec);

/// After the cost model (EnergyCostPlanner::Finish): the declared devices price the run.
void FinishEndpointCost(const EndpointTarget& t, RunRecord* rec);

}  // namespace cb
