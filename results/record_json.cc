#include "results/record_json.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include "results/json_number.h"

namespace cb {
namespace {

using nlohmann::json;

/// NaN and infinities have no JSON spelling: they are written as null (and read back as NaN).

/// Parameter count of the model, 0 where the shape is too incomplete to compute it (a record of
/// a run that failed before the model was resolved must still serialise).
int64_t SafeTotalParams(const ModelSpec& m) {
  if (m.hidden_size <= 0 || m.num_layers < 0 || m.vocab_size < 0) return 0;
  if (m.head_dim <= 0 && m.num_heads <= 0) return 0;
  return m.TotalParams();
}

json PerDType(const double (&v)[kDTypeCount]) {
  json o = json::object();
  for (int i = 0; i < kDTypeCount; ++i)
    o[std::string(DTypeName(static_cast<DType>(i)))] = FiniteOrNull(v[i]);
  return o;
}

json ModelJson(const ModelSpec& m) {
  json o = json{{"name", m.name},
                {"family", m.family},
                {"source", m.source},
                {"hidden_size", m.hidden_size},
                {"num_layers", m.num_layers},
                {"num_heads", m.num_heads},
                {"num_kv_heads", m.num_kv_heads},
                {"head_dim", m.head_dim},
                {"ffn_size", m.ffn_size},
                {"vocab_size", m.vocab_size},
                {"max_context", m.max_context},
                {"rope_theta", FiniteOrNull(m.rope_theta)},
                {"norm_eps", FiniteOrNull(m.norm_eps)},
                {"tie_embeddings", m.tie_embeddings},
                {"qk_norm", m.qk_norm},
                {"published_params", FiniteOrNull(m.published_params)},
                {"total_params", SafeTotalParams(m)}};
  if (m.moe.enabled() && SafeTotalParams(m) > 0) o["active_params"] = m.ActiveParams();
  if (m.published_active_params > 0) o["published_active_params"] = m.published_active_params;
  if (m.moe.enabled()) {
    const MoeSpec& e = m.moe;
    o["moe"] = json{{"num_experts", e.num_experts},
                    {"experts_per_token", e.experts_per_token},
                    {"expert_ffn_size", e.expert_ffn_size},
                    {"num_shared_experts", e.num_shared_experts},
                    {"shared_ffn_size", e.shared_ffn_size},
                    {"first_dense_layers", e.first_dense_layers},
                    {"router_scoring", e.scoring},
                    {"norm_topk_prob", e.norm_topk},
                    {"routed_scaling_factor", FiniteOrNull(e.routed_scaling)},
                    {"n_group", e.num_groups},
                    {"topk_group", e.topk_groups},
                    {"router_bias", e.router_bias},
                    {"routing_zipf_s", FiniteOrNull(m.routing_zipf_s)}};
  }
  if (m.mla.enabled()) {
    o["mla"] = json{{"q_lora_rank", m.mla.q_lora_rank},
                    {"kv_lora_rank", m.mla.kv_lora_rank},
                    {"qk_nope_head_dim", m.mla.qk_nope_head_dim},
                    {"qk_rope_head_dim", m.mla.qk_rope_head_dim},
                    {"v_head_dim", m.mla.v_head_dim}};
  }
  return o;
}

json DistributionJson(const Distribution& d) {
  return json{{"count", static_cast<uint64_t>(d.count)},
              {"mean", FiniteOrNull(d.mean)},
              {"p50", FiniteOrNull(d.p50)},
              {"p90", FiniteOrNull(d.p90)},
              {"p99", FiniteOrNull(d.p99)},
              {"min", FiniteOrNull(d.min)},
              {"max", FiniteOrNull(d.max)},
              {"stddev", FiniteOrNull(d.stddev)},
              {"cv", FiniteOrNull(d.cv)}};
}

}  // namespace

json ToJson(const RunRecord& rec) {
  const WorkloadSpec& w = rec.workload;
  json doc = json::object();
  doc["schema_version"] = rec.schema_version;
  doc["run"] = json{{"id", rec.run_id},
                    {"start_time", rec.start_time},
                    {"end_time", rec.end_time},
                    {"host", rec.host},
                    {"git_commit", rec.git_commit},
                    {"tool_version", rec.tool_version},
                    {"status", rec.status},
                    {"status_message", rec.status_message}};
  if (!rec.cluster_name.empty()) doc["run"]["cluster_name"] = rec.cluster_name;
  doc["workload"] = json{{"model_ref", w.model_ref},
                         {"scenario", w.scenario},
                         {"backend", w.backend},
                         {"dtype", std::string(DTypeName(w.dtype))},
                         {"kv_dtype", std::string(DTypeName(w.KvDType()))},
                         {"batch", w.batch},
                         {"prompt_len", w.prompt_len},
                         {"gen_len", w.gen_len},
                         {"layers", w.layers},
                         {"layers_run", rec.layers_run},
                         {"model_layers", w.model.num_layers},
                         {"extrapolated", rec.extrapolated},
                         {"extrapolation_method", rec.extrapolation_method},
                         {"seed", w.seed},
                         {"repetitions", w.repetitions},
                         {"warmup", w.warmup},
                         {"verify", w.verify},
                         {"verify_len", w.verify_len}};
  if (!rec.layer_plan.layers.empty()) {
    json kinds = json::array();
    for (const LayerKind& k : rec.layer_plan.kinds) {
      kinds.push_back({{"kind", k.name}, {"model_layers", k.model_layers}, {"run", k.run}});
    }
    doc["workload"]["layers_run_indices"] = rec.layer_plan.layers;
    doc["workload"]["layer_kinds"] = std::move(kinds);
  }
  doc["model"] = ModelJson(w.model);

  const DeviceProps& d = rec.device;
  double peak[kDTypeCount];
  for (int i = 0; i < kDTypeCount; ++i) peak[i] = d.peak_flops[i];
  doc["device"] = json{{"backend", d.backend},
                       {"name", d.name},
                       {"kind", d.kind},
                       {"uuid", d.uuid},
                       {"host", d.host},
                       {"peak_flops", PerDType(peak)},
                       {"mem_bandwidth_bytes_per_s", FiniteOrNull(d.mem_bandwidth_bytes_per_s)},
                       {"mem_bytes", d.mem_bytes},
                       {"threads", d.threads},
                       {"isa", d.isa},
                       {"simulated", d.simulated}};

  const Ceilings& c = rec.ceilings;
  doc["ceilings"] = json{{"matmul_flops_per_s", PerDType(c.matmul_flops_per_s)},
                         {"mem_read_bytes_per_s", FiniteOrNull(c.mem_read_bytes_per_s)},
                         {"source", c.source},
                         {"measured_at", c.measured_at}};

  json metrics = json::object();
  for (const Metric& m : rec.metrics) {
    if (metrics.contains(m.name)) continue;  // the first wins, as in FindMetric
    json jm{{"value", FiniteOrNull(m.value)},
            {"unit", m.unit},
            {"how", std::string(ProvenanceName(m.how))}};
    if (m.has_distribution) jm["distribution"] = DistributionJson(m.dist);
    metrics[m.name] = std::move(jm);
  }
  doc["metrics"] = std::move(metrics);

  json samples = json::array();
  for (const RepetitionSample& s : rec.samples) {
    json steps = json::array();
    for (double t : s.decode_step_s) steps.push_back(FiniteOrNull(t));
    samples.push_back(json{{"prefill_s", FiniteOrNull(s.prefill_s)},
                           {"decode_step_s", std::move(steps)},
                           {"e2e_s", FiniteOrNull(s.e2e_s)},
                           {"backend_s", FiniteOrNull(s.backend_s)}});
  }
  doc["samples"] = std::move(samples);

  const Verification& v = rec.verification;
  doc["verification"] = json{{"status", v.status},
                             {"message", v.message},
                             {"sequences", v.sequences},
                             {"positions", v.positions},
                             {"max_abs_error", FiniteOrNull(v.max_abs_error)},
                             {"max_rel_error", FiniteOrNull(v.max_rel_error)},
                             {"tolerance", FiniteOrNull(v.tolerance)},
                             {"argmax_agreement", FiniteOrNull(v.argmax_agreement)},
                             {"nan_found", v.nan_found}};
  if (v.route_decisions > 0) {
    doc["verification"]["route_decisions"] = v.route_decisions;
    doc["verification"]["route_flips"] = v.route_flips;
    doc["verification"]["route_logit_error"] = FiniteOrNull(v.route_logit_error);
  }
  if (!rec.precision.empty()) doc["precision"] = rec.precision;
  if (rec.accuracy) {
    doc["accuracy"] = json{{"baseline_dtype", rec.accuracy->baseline_dtype},
                           {"positions", rec.accuracy->positions},
                           {"top1_agreement", FiniteOrNull(rec.accuracy->top1_agreement)},
                           {"mean_kl_divergence", FiniteOrNull(rec.accuracy->mean_kl_divergence)}};
  }
  doc["generated_tokens"] = rec.generated_tokens;
  if (rec.energy) doc["energy"] = EnergyRecordToJson(*rec.energy);
  if (rec.cluster) doc["cluster"] = ClusterRecordToJson(*rec.cluster);
  if (rec.deployment) doc["deployment"] = DeploymentRecordToJson(*rec.deployment);
  if (rec.cost) doc["cost"] = CostRecordToJson(*rec.cost);
  if (rec.serving) doc["serving"] = ServingRecordToJson(*rec.serving);
  if (rec.validity) doc["validity"] = ValidityRecordToJson(*rec.validity);
  if (rec.sweep) doc["sweep"] = SweepRecordToJson(*rec.sweep);
  if (rec.endpoint) doc["endpoint"] = EndpointRecordToJson(*rec.endpoint);
  if (rec.ceiling_check) doc["ceiling_check"] = CeilingCheckRecordToJson(*rec.ceiling_check);
  if (rec.op_breakdown) doc["op_breakdown"] = OpBreakdownRecordToJson(*rec.op_breakdown);
  return doc;
}

}  // namespace cb
