// libFuzzer target over the inputs users write: model files, suite files (expanded and
// validated into a plan, every workload resolved), and a simulated deployment's fields. Any
// input must end in a Status (bad input names a file and field); a crash, a hang, an
// allocation beyond the bounds or undefined behaviour is a bug. ci/fuzz runs it.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/plan.h"
#include "workloads/deployment.h"
#include "workloads/json_fields.h"
#include "workloads/model_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  cb::ModelSpec model;
  (void)cb::ParseModelSpec(text, "fuzz-model.json", &model);
  nlohmann::json doc;
  if (!cb::ParseJsonText(text, "fuzz-suite.json", &doc).ok()) return 0;
  std::vector<cb::WorkloadSpec> plan;
  if (!cb::ExpandSuite(doc, nlohmann::json::object(), "fuzz-suite.json", &plan).ok()) return 0;
  for (const cb::WorkloadSpec& w : plan) {
    std::vector<cb::PoolLayout> pools;
    if (!w.deployment.disaggregate.empty()) {
      (void)cb::ParsePools(w.deployment.disaggregate, "fuzz", &pools);
    }
    for (const cb::PoolLayout& p : pools) {
      (void)cb::ValidatePool(w.model, p, w.deployment.redundant_experts, "fuzz");
    }
  }
  return 0;
}
