#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "results/atomic_file.h"
#include "results/run_record.h"

namespace cb {

nlohmann::json ToJson(const RunRecord& record);
/// Fails with kInvalidInput naming `origin` and the field when the document does not fit.
Status FromJson(const nlohmann::json& doc, const std::string& origin, RunRecord* out);

}  // namespace cb
