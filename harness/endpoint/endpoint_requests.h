#pragma once

#include <string>
#include <vector>

#include "harness/endpoint/endpoint_pass.h"
#include "harness/endpoint/endpoint_target.h"
#include "workloads/workload_spec.h"

namespace cb {

/// How requests are worded once the probe has settled the model and the API's options.
struct RequestStyle {
  std::string model;
  bool ignore_eos = true;
};

/// Requests `first` .. `first + count - 1` of an endpoint run. Lengths and open-loop arrivals
/// come from MakeRequests (the same seeded distributions and arrival process as a local run);
/// prompts are synthetic words (one per requested prompt token), or the dataset's prompts in
/// a seeded order with their output lengths (unless output_dist is given, which then sets
/// them). The same seed gives the same requests.
Status MakeEndpointRequests(const WorkloadSpec& w, const EndpointTarget& t,
                            const RequestStyle& style, int64_t first, int64_t count,
                            std::vector<EndpointRequest>* out);

}  // namespace cb
