#include "harness/plan.h"

#include <fstream>
#include <sstream>

#include "backends/endpoint/endpoint_url.h"
#include "harness/core/fmt.h"
#include "harness/core/limits.h"
#include "harness/core/text_file.h"
#include "harness/endpoint/endpoint_fields.h"
#include "harness/scenarios/serving_fields.h"
#include "workloads/json_fields.h"
#include "workloads/layer_plan.h"
#include "workloads/moe_routing.h"

namespace cb {
namespace {

using nlohmann::json;

bool IsListField(const std::string& key) {
  return key == "model" || key == "backend" || key == "dtype" || key == "batch" ||
         key == "prompt_len" || key == "gen_len" || key == "layers" || key == "seed" ||
         key == "routing" || key == "kv_dtype" || key == "system" || key == "devices" ||
         key == "tp" || key == "ep" || key == "disaggregate" || key == "mtp" || key == "overlap" ||
         key == "rate" || key == "concurrency";
}

Status CheckKeys(const json& obj, const std::string& where) {
  if (!obj.is_object()) return Status::InvalidInput(where + ": expected an object");
  for (const auto& [key, value] : obj.items()) {
    bool known = false;
    for (const char* f : kWorkloadFields) known |= key == f;
    for (const char* f : kServingFields) known |= key == f;
    for (const char* f : kEndpointFields) known |= key == f;
    if (!known) {
      std::string list;
      for (const char* f : kWorkloadFields) list += (list.empty() ? "" : ", ") + std::string(f);
      for (const char* f : kServingFields) list += ", " + std::string(f);
      for (const char* f : kEndpointFields) list += ", " + std::string(f);
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

/// Cartesian product of the list-valued fields of `entry`; bounded before anything is built.
Status Expand(const json& entry, const std::string& where, std::vector<json>* out) {
  double product = 1;
  for (const auto& [key, value] : entry.items()) {
    if (value.is_array() && !IsArrayValuedField(key)) product *= static_cast<double>(value.size());
  }
  if (product + static_cast<double>(out->size()) > static_cast<double>(limits::kMaxWorkloads)) {
    return Status::InvalidInput(where + ": expands to " + std::to_string(product) +
                                " workloads, more than the bound " +
                                std::to_string(limits::kMaxWorkloads) + " for one plan");
  }
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
  return Status::Ok();
}

/// The deployment fields of a suite entry (checked against the catalog at pre-flight).
Status ReadDeployment(const FieldReader& f, DeploymentSpec* d) {
  int64_t devices = 0, tp = 0, dp = 0, ep = 0, redundant = 0, mtp = 0;
  CB_RETURN_IF_ERROR(f.String("system", false, &d->system));
  CB_RETURN_IF_ERROR(f.Int("devices", false, &devices));
  CB_RETURN_IF_ERROR(f.Int("tp", false, &tp));
  CB_RETURN_IF_ERROR(f.Int("dp", false, &dp));
  CB_RETURN_IF_ERROR(f.Int("ep", false, &ep));
  CB_RETURN_IF_ERROR(f.String("disaggregate", false, &d->disaggregate));
  CB_RETURN_IF_ERROR(f.Int("redundant_experts", false, &redundant));
  CB_RETURN_IF_ERROR(f.Int("mtp", false, &mtp));
  CB_RETURN_IF_ERROR(f.Double("mtp_acceptance", false, &d->mtp_acceptance));
  CB_RETURN_IF_ERROR(f.Bool("overlap", false, &d->overlap));
  constexpr int64_t kMaxDevices = limits::kMaxDevices;
  struct Bound {
    const char* name;
    int64_t value, hi;
  };
  for (const Bound& b :
       {Bound{"devices", devices, kMaxDevices}, Bound{"tp", tp, kMaxDevices},
        Bound{"dp", dp, kMaxDevices}, Bound{"ep", ep, kMaxDevices},
        Bound{"redundant_experts", redundant, limits::kMaxExperts}, Bound{"mtp", mtp, 8}}) {
    if (b.value < 0 || b.value > b.hi) {
      return f.Error(b.name, "must be between 0 and " + std::to_string(b.hi) + ", got " +
                                 std::to_string(b.value));
    }
  }
  if (!(d->mtp_acceptance > 0 && d->mtp_acceptance <= 1)) {
    return f.Error("mtp_acceptance", "must be in (0, 1], got " + Fmt(d->mtp_acceptance, "%g"));
  }
  d->devices = static_cast<int>(devices);
  d->tp = static_cast<int>(tp);
  d->dp = static_cast<int>(dp);
  d->ep = static_cast<int>(ep);
  d->redundant_experts = static_cast<int>(redundant);
  d->mtp = static_cast<int>(mtp);
  if (!d->disaggregate.empty()) {
    std::vector<PoolLayout> pools;
    if (Status s = ParsePools(d->disaggregate, "disaggregate", &pools); !s.ok()) {
      return f.Error("disaggregate", s.message().substr(std::string("disaggregate: ").size()));
    }
  }
  return Status::Ok();
}

Status Resolve(const json& obj, const std::string& where, WorkloadSpec* w) {
  FieldReader f(obj, where);
  CB_RETURN_IF_ERROR(f.String("model", true, &w->model_ref));
  CB_RETURN_IF_ERROR(f.String("backend", false, &w->backend));
  CB_RETURN_IF_ERROR(f.String("scenario", false, &w->scenario));
  std::string dtype = std::string(DTypeName(w->dtype));
  CB_RETURN_IF_ERROR(f.String("dtype", false, &dtype));
  const auto parsed = ParseDType(dtype);
  if (!parsed)
    return f.Error("dtype", "unknown dtype '" + dtype + "'; allowed values: " + kDTypeNames);
  w->dtype = *parsed;
  std::string kv;
  CB_RETURN_IF_ERROR(f.String("kv_dtype", false, &kv));
  if (!kv.empty()) {
    const auto k = ParseDType(kv);
    if (!k || *k == DType::kF16 || *k == DType::kF32) {
      return f.Error("kv_dtype",
                     "unknown KV-cache dtype '" + kv + "'; allowed values: bf16, fp8, int8");
    }
    w->kv_dtype = *k;
  }
  CB_RETURN_IF_ERROR(ReadDeployment(f, &w->deployment));
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
  CB_RETURN_IF_ERROR(f.Bool("op_breakdown", false, &w->op_breakdown));
  CB_RETURN_IF_ERROR(ReadCostOverrides(f, &w->cost));
  CB_RETURN_IF_ERROR(ReadServingFields(obj, f, &w->serving));
  CB_RETURN_IF_ERROR(ReadEndpointFields(obj, f, w->backend, &w->endpoint));
  struct Bound {
    const char* field;
    int64_t value, lo, hi;
  };
  // Checked as read (int64), before narrowing: a value above 2^31 must not wrap to a small one.
  for (const Bound& b :
       {Bound{"seed", seed, 0, limits::kMaxSeed}, Bound{"layers", layers, 0, limits::kMaxLayers},
        Bound{"repetitions", reps, 1, limits::kMaxRepetitions},
        Bound{"warmup", warmup, 0, limits::kMaxWarmup},
        Bound{"verify_len", verify_len, 0, limits::kMaxContext},
        Bound{"batch", w->batch, 1, limits::kMaxBatch},
        Bound{"prompt_len", w->prompt_len, 1, limits::kMaxContext},
        Bound{"gen_len", w->gen_len, 1, limits::kMaxContext}}) {
    if (b.value < b.lo || b.value > b.hi) {
      return f.Error(b.field, "must be between " + std::to_string(b.lo) + " and " +
                                  std::to_string(b.hi) + ", got " + std::to_string(b.value));
    }
  }
  w->layers = static_cast<int>(layers);
  w->seed = static_cast<uint64_t>(seed);
  w->repetitions = static_cast<int>(reps);
  w->warmup = static_cast<int>(warmup);
  w->verify_len = static_cast<int>(verify_len);
  std::string routing = "uniform";
  CB_RETURN_IF_ERROR(f.String("routing", false, &routing));
  Status s = LoadModelSpec(w->model_ref, &w->model);
  if (!s.ok() && IsEndpointBackend(w->backend) && s.code() == StatusCode::kInvalidInput) {
    // An endpoint serves its own model: a name that is no preset is the served model's.
    w->model = ExternalModel(w->model_ref);
    s = Status::Ok();
  }
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
  // An endpoint's external model has an unknown context (0): the server checks it.
  if (w.model.max_context > 0 && w.prompt_len + w.gen_len > w.model.max_context) {
    return bad("prompt_len", "prompt_len + gen_len = " + std::to_string(w.prompt_len + w.gen_len) +
                                 " exceeds the context of " + w.model.name + " (" +
                                 std::to_string(w.model.max_context) + " tokens)");
  }
  if (w.layers < 0 || w.layers > w.model.num_layers) {
    return bad("layers", "must be between 1 and " + std::to_string(w.model.num_layers) +
                             " (0 = all), got " + std::to_string(w.layers));
  }
  LayerPlan plan;
  if (Status s = PlanLayers(w.model, w.layers, &plan); !s.ok()) return bad("layers", s.message());
  if (w.repetitions < 1)
    return bad("repetitions", "must be at least 1, got " + std::to_string(w.repetitions));
  if (w.warmup < 0) return bad("warmup", "must not be negative, got " + std::to_string(w.warmup));
  if (w.verify_len < 0 || w.verify_len > w.prompt_len + w.gen_len) {
    return bad("verify_len", "must be between 0 (auto) and prompt_len + gen_len");
  }
  if (w.op_breakdown && (w.scenario != "offline" || w.backend.rfind("sim", 0) == 0 ||
                         w.backend.rfind("endpoint", 0) == 0)) {
    return bad("op_breakdown",
               "times a measured device's ops: the offline scenario on the cpu, cuda or reference "
               "backend only (got scenario '" +
                   w.scenario + "', backend '" + w.backend + "')");
  }
  CB_RETURN_IF_ERROR(ValidateScenario(w, where));
  return ValidateEndpoint(w, where);
}

Status ExpandSuite(const json& suite, const json& overrides, const std::string& origin,
                   std::vector<WorkloadSpec>* out) {
  if (!suite.is_object()) return Status::InvalidInput(origin + ": expected a JSON object");
  FieldReader top(suite, origin);
  // compare_hardware: run by the CLI after the plan (harness/cli/compare_hardware.h).
  CB_RETURN_IF_ERROR(
      top.OnlyKnown({"name", "description", "defaults", "workloads", "compare_hardware"}));
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
    CB_RETURN_IF_ERROR(Expand(merged, where, &expanded));
    if (static_cast<int64_t>(out->size() + expanded.size()) > limits::kMaxWorkloads) {
      return Status::InvalidInput(where + ": the plan would hold more than " +
                                  std::to_string(limits::kMaxWorkloads) + " workloads");
    }
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
  std::string text;
  if (Status s = ReadTextFile(path, &text); !s.ok()) {
    return Status::InvalidInput(path + ": cannot read suite file (" + s.message() + ")");
  }
  json doc;
  CB_RETURN_IF_ERROR(ParseJsonText(text, path, &doc));
  return ExpandSuite(doc, overrides, path, out);
}

}  // namespace cb
