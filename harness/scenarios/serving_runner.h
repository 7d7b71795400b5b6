#pragma once

#include <vector>

#include "harness/runner.h"
#include "harness/scenarios/batcher.h"
#include "harness/scenarios/serving_pass.h"

namespace cb {

/// The requests of a serving run: lengths from the workload's distributions, prompt tokens
/// synthetic, open-loop arrival times from the arrival process (closed loop: 0, set when
/// issued). Requests are numbered from `first`; the same seed gives the same requests.
Status MakeRequests(const WorkloadSpec& w, int64_t first, int64_t count, int64_t vocab,
                    std::vector<ServingRequest>* out);

/// Requests of a serving run's measured pass: `requests`, else the scenario's min_requests.
int64_t MeasuredRequests(const WorkloadSpec& w);

/// The settings of a serving run's record (load, distributions, slots, SLOs); the pass's
/// figures are the caller's. `concurrency` 0: open loop at the workload's rate.
Status DescribeServing(const WorkloadSpec& w, int64_t concurrency, int64_t slots,
                       int64_t max_prefill_tokens, ServingRecord* s);
/// Appends each request with what happened to it to `s->requests`.
void AddRequestSamples(const std::vector<ServingRequest>& reqs,
                       const std::vector<RequestOutcome>& outcomes, ServingRecord* s);

/// Runs the single-stream or server scenario of `w` (harness/scenarios/README in
/// docs/scenarios.md): verification, warm-up requests, one measured pass with continuous
/// batching, metrics, validity. Same contract as RunOffline.
Status RunServing(const WorkloadSpec& w, Device& device, const RunnerOptions& opts,
                  RunRecord* record);

/// Tags a point of a sweep with the sweep it belongs to (the record's `sweep` section).
void TagSweep(const WorkloadSpec& w, RunRecord* record);
/// Applies the offline scenario's validity rules when the workload sets any.
void ApplyOfflineValidity(const WorkloadSpec& w, RunRecord* record);

/// Runs `w` in its scenario: RunOffline or RunServing.
Status RunScenario(const WorkloadSpec& w, Device& device, const RunnerOptions& opts,
                   RunRecord* record);

}  // namespace cb
