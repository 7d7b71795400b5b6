#pragma once

#include <cstdint>
#include <string>

#include "harness/deployment/layout_search.h"
#include "harness/deployment/sim_target.h"

namespace cb {

/// Serves point `p` of `device` (ResolveSimDevice's target: device, links; its deployment is
/// replaced by p's) for `base` (model, lengths, seed) at `load`, with four times the requests
/// the simulated groups hold in flight (at least `requests`, at most 20,000), and takes the
/// latencies of the steady state: the requests from the fifth to the fourth fifth by arrival.
/// kCancelled on Ctrl-C; a layout the serving simulation cannot run comes back with `skipped`
/// set to why.
Status ServeLayout(const WorkloadSpec& base, const SimTarget& device, const LayoutPoint& p,
                   double load, int64_t requests, double slo_ttft_s, double slo_tpot_s,
                   ServedFigures* out);

}  // namespace cb
