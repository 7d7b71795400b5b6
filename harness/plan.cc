#include "harness/plan.h"

#include <fstream>
#include <sstream>

#include "harness/scenarios/serving_fields.h"
#include "workloads/json_fields.h"
#include "workloads/moe_routing.h"

namespace cb {
namespace {

using nlohmann::json;

bool IsListField(const std::string& key) {
  return key == "model" || key == "backend" || key == "dtype" || key == "batch" ||
         key == "prompt_len" || key == "gen_len" || key == "layers" || key == "seed" ||
         key == "routing";
}

Status CheckKeys(const json& obj, const std::string& where) {
  if (!obj.is_object()) return Status::InvalidInput(where + ": expected an object");
  for (const auto& [key, value] : obj.items()) {
    bool known = false;
    for (const char* f : kWorkloadFields) known |= key == f;
    for (const char* f : kServingFields) known |= key == f;
    if (!known) {
      std::string list;
      for (const char* f : kWorkloadFields) list += (list.empty() ? "" : ", ") + std::string(f);
      for (const char* f : kServingFields) list += ", " + std::string(f);
      return Status::InvalidInput(where + ": field '" + key + "': unknown; allowed fields are " +
                                  list);
    }
    if (value.is_array() && !IsListField(key) && !IsArrayValuedField(key)) {
      return Status::InvalidInput(where + ": field '" + key + "': takes one value, not a list");
    }
    if (value.is_array() && value.empty()) {
      return Status::InvalidInput(where + ": field '" + key + "': empty list");
    }
  }
  return Status::Ok();
}

/// Cartesian product of the list-valued fields of `entry`.
void Expand(const json& entry, std::vector<json>* out) {
  std::vector<json> acc{json::object()};
  for (const auto& [key, value] : entry.items()) {
    std::vector<json> next;
    const json values = value.is_array() && !IsArrayValuedField(key) ? value : json::array({value});
    for (const json& partial : acc) {
      for (const json& v : values) {
        json p = partial;
        p[key] = v;
        next.push_back(std::move(p));
      }
    }
    acc = std::move(next);
  }
  out->insert(out->end(), acc.begin(), acc.end());
}

Status Resolve(const json& obj, const std::string& where, WorkloadSpec* w) {
  FieldReader f(obj, where);
  CB_RETURN_IF_ERROR(f.String("model", true, &w->model_ref));
  CB_RETURN_IF_ERROR(f.String("backend", false, &w->backend));
  CB_RETURN_IF_ERROR(f.String("scenario", false, &w->scenario));
  std::string dtype = std::string(DTypeName(w->dtype));
  CB_RETURN_IF_ERROR(f.String("dtype", false, &dtype));
  const auto parsed = ParseDType(dtype);
  if (!parsed) return f.Error("dtype", "unknown dtype '" + dtype + "'; allowed values: fp32, bf16");
  w->dtype = *parsed;
  CB_RETURN_IF_ERROR(f.Int("batch", false, &w->batch));
  CB_RETURN_IF_ERROR(f.Int("prompt_len", false, &w->prompt_len));
  CB_RETURN_IF_ERROR(f.Int("gen_len", false, &w->gen_len));
  int64_t layers = w->layers, seed = static_cast<int64_t>(w->seed), reps = w->repetitions,
          warmup = w->warmup, verify_len = w->verify_len;
  CB_RETURN_IF_ERROR(f.Int("layers", false, &layers));
  CB_RETURN_IF_ERROR(f.Int("seed", false, &seed));
  CB_RETURN_IF_ERROR(f.Int("repetitions", false, &reps));
  CB_RETURN_IF_ERROR(f.Int("warmup", false, &warmup));
  CB_RETURN_IF_ERROR(f.Int("verify_len", false, &verify_len));
  CB_RETURN_IF_ERROR(f.Bool("verify", false, &w->verify));
  CB_RETURN_IF_ERROR(ReadCostOverrides(f, &w->cost));
  CB_RETURN_IF_ERROR(ReadServingFields(obj, f, &w->serving));
  if (seed < 0) return f.Error("seed", "must not be negative");
  w->layers = static_cast<int>(layers);
  w->seed = static_cast<uint64_t>(seed);
  w->repetitions = static_cast<int>(reps);
  w->warmup = static_cast<int>(warmup);
  w->verify_len = static_cast<int>(verify_len);
  std::string routing = "uniform";
  CB_RETURN_IF_ERROR(f.String("routing", false, &routing));
  Status s = LoadModelSpec(w->model_ref, &w->model);
  if (!s.ok()) return Status(s.code(), where + ": field 'model': " + s.message());
  if (Status r = ParseRouting(routing, w->model, &w->model.routing_zipf_s); !r.ok()) {
    return Status::InvalidInput(where + ": field 'routing': " + r.message());
  }
  return ValidateWorkload(*w, where);
}

}  // namespace

Status ValidateWorkload(const WorkloadSpec& w, const std::string& where) {
  auto bad = [&](const char* field, const std::string& what) {
    return Status::InvalidInput(where + ": field '" + field + "': " + what);
  };
  if (w.batch < 1) return bad("batch", "must be at least 1, got " + std::to_string(w.batch));
  if (w.prompt_len < 1)
    return bad("prompt_len", "must be at least 1, got " + std::to_string(w.prompt_len));
  if (w.gen_len < 1) return bad("gen_len", "must be at least 1, got " + std::to_string(w.gen_len));
  if (w.prompt_len + w.gen_len > w.model.max_context) {
    return bad("prompt_len", "prompt_len + gen_len = " + std::to_string(w.prompt_len + w.gen_len) +
                                 " exceeds the context of " + w.model.name + " (" +
                                 std::to_string(w.model.max_context) + " tokens)");
  }
  if (w.layers < 0 || w.layers > w.model.num_layers) {
    return bad("layers", "must be between 1 and " + std::to_string(w.model.num_layers) +
                             " (0 = all), got " + std::to_string(w.layers));
  }
  if (w.repetitions < 1)
    return bad("repetitions", "must be at least 1, got " + std::to_string(w.repetitions));
  if (w.warmup < 0) return bad("warmup", "must not be negative, got " + std::to_string(w.warmup));
  if (w.verify_len < 0 || w.verify_len > w.prompt_len + w.gen_len) {
    return bad("verify_len", "must be between 0 (auto) and prompt_len + gen_len");
  }
  return ValidateScenario(w, where);
}

Status ExpandSuite(const json& suite, const json& overrides, const std::string& origin,
                   std::vector<WorkloadSpec>* out) {
  if (!suite.is_object()) return Status::InvalidInput(origin + ": expected a JSON object");
  FieldReader top(suite, origin);
  CB_RETURN_IF_ERROR(top.OnlyKnown({"name", "description", "defaults", "workloads"}));
  const json defaults = suite.value("defaults", json::object());
  CB_RETURN_IF_ERROR(CheckKeys(defaults, origin + ": defaults"));
  CB_RETURN_IF_ERROR(CheckKeys(overrides, "command line"));
  if (!suite.contains("workloads") || !suite["workloads"].is_array() ||
      suite["workloads"].empty()) {
    return Status::InvalidInput(origin + ": field 'workloads': expected a non-empty array");
  }
  out->clear();
  int sweeps = 0;
  const json& entries = suite["workloads"];
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string where = origin + ": workloads[" + std::to_string(i) + "]";
    CB_RETURN_IF_ERROR(CheckKeys(entries[i], where));
    json merged = defaults;
    merged.update(entries[i]);
    merged.update(overrides);
    std::vector<json> expanded;
    Expand(merged, &expanded);
    for (const json& e : expanded) {
      WorkloadSpec w;
      CB_RETURN_IF_ERROR(Resolve(e, where, &w));
      // A sweep becomes its points, tagged with the sweep they belong to.
      ExpandSweep(w, w.scenario == "sweep" ? "sweep-" + std::to_string(++sweeps) : "", out);
    }
  }
  return Status::Ok();
}

Status LoadSuiteFile(const std::string& path, const json& overrides,
                     std::vector<WorkloadSpec>* out) {
  std::ifstream in(path);
  if (!in) return Status::InvalidInput(path + ": cannot read suite file");
  std::stringstream buf;
  buf << in.rdbuf();
  json doc;
  CB_RETURN_IF_ERROR(ParseJsonText(buf.str(), path, &doc));
  return ExpandSuite(doc, overrides, path, out);
}

}  // namespace cb
