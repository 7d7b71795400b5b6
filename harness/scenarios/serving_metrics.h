#pragma once

#include "harness/scenarios/validity.h"
#include "results/run_record.h"

namespace cb {

/// The figures of a serving run from rec->serving's requests: TTFT, TPOT, E2E (from each
/// request's scheduled arrival), output and prompt throughput, achieved request rate, goodput
/// under the SLOs. `devices` divides the per-device throughput.
void AddServingMetrics(Provenance how, int devices, RunRecord* rec);

/// What the validity rules look at: a serving run's requests; an offline run's repetitions.
ValidityInput ServingValidityInput(const RunRecord& rec);
ValidityInput OfflineValidityInput(const RunRecord& rec);

/// The energy and cost metrics of a serving run over its tokens and duration (the offline
/// formulas assume batch x (prompt + gen) tokens per repetition). Call after the energy and
/// cost sections are filled (EnergyCostPlanner::Finish); a no-op for other runs.
void FixServingEnergyCost(RunRecord* rec);

}  // namespace cb
