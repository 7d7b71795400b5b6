// Run records read back from JSON (FromJson): the inverse of record_json.cc's ToJson.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>

#include "results/record_json.h"
#include "workloads/json_fields.h"

namespace cb {
namespace {

using nlohmann::json;
using Reader = JsonReader;

/// An object keyed by dtype name ("fp32", "bf16", ...), each a number or null.
Status ReadPerDType(const Reader& r, const json& obj, const std::string& path, const char* key,
                    double (&out)[kDTypeCount]) {
  const json* o;
  CB_RETURN_IF_ERROR(r.Object(obj, path, key, &o));
  const std::string p = Reader::Join(path, key);
  for (int i = 0; i < kDTypeCount; ++i) {
    const std::string name(DTypeName(static_cast<DType>(i)));
    // fp8 and int8 came with schema 1.3; older files have no figure for them.
    if (IsQuantized(static_cast<DType>(i)) && !o->contains(name)) {
      out[i] = 0;
      continue;
    }
    CB_RETURN_IF_ERROR(r.Number(*o, p, name.c_str(), &out[i]));
  }
  return Status::Ok();
}

/// workload.layer_kinds and layers_run_indices (optional: absent before representative
/// layers existed).
Status ReadLayerPlan(const Reader& r, const json& w, const std::string& path, LayerPlan* plan) {
  *plan = LayerPlan{};
  if (w.contains("layers_run_indices")) {
    const json* a;
    CB_RETURN_IF_ERROR(r.Array(w, path, "layers_run_indices", &a));
    const std::string ap = Reader::Join(path, "layers_run_indices");
    for (size_t i = 0; i < a->size(); ++i) {
      int l = 0;
      CB_RETURN_IF_ERROR(r.IntegerValue<int>((*a)[i], Reader::Index(ap, i), &l, 0));
      plan->layers.push_back(l);
    }
  }
  if (!w.contains("layer_kinds")) return Status::Ok();
  const json* kinds;
  CB_RETURN_IF_ERROR(r.Array(w, path, "layer_kinds", &kinds));
  const std::string kp = Reader::Join(path, "layer_kinds");
  for (size_t i = 0; i < kinds->size(); ++i) {
    const std::string ip = Reader::Index(kp, i);
    const json& o = (*kinds)[i];
    if (!o.is_object()) return r.Expected(ip, "object", o);
    LayerKind k;
    CB_RETURN_IF_ERROR(r.String(o, ip, "kind", &k.name));
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(o, ip, "model_layers", &k.model_layers, 1));
    const json* run;
    CB_RETURN_IF_ERROR(r.Array(o, ip, "run", &run));
    for (size_t j = 0; j < run->size(); ++j) {
      int l = 0;
      CB_RETURN_IF_ERROR(
          r.IntegerValue<int>((*run)[j], Reader::Index(Reader::Join(ip, "run"), j), &l, 0));
      k.run.push_back(l);
    }
    if (k.run.empty()) return r.Error(Reader::Join(ip, "run"), "expected at least one layer");
    plan->kinds.push_back(std::move(k));
  }
  for (int l : plan->layers) {
    int kind = -1;
    for (size_t k = 0; k < plan->kinds.size(); ++k) {
      const auto& run = plan->kinds[k].run;
      if (std::find(run.begin(), run.end(), l) != run.end()) kind = static_cast<int>(k);
    }
    if (kind < 0) {
      return r.Error(Reader::Join(path, "layers_run_indices"),
                     "layer " + std::to_string(l) + " is in no entry of layer_kinds");
    }
    plan->kind_of.push_back(kind);
  }
  return Status::Ok();
}

Status ReadRun(const Reader& r, const json& doc, RunRecord* rec) {
  const json* run;
  CB_RETURN_IF_ERROR(r.Object(doc, "", "run", &run));
  const std::string p = "run";
  CB_RETURN_IF_ERROR(r.String(*run, p, "id", &rec->run_id));
  CB_RETURN_IF_ERROR(r.String(*run, p, "start_time", &rec->start_time));
  CB_RETURN_IF_ERROR(r.String(*run, p, "end_time", &rec->end_time));
  CB_RETURN_IF_ERROR(r.String(*run, p, "host", &rec->host));
  CB_RETURN_IF_ERROR(r.String(*run, p, "git_commit", &rec->git_commit));
  CB_RETURN_IF_ERROR(r.String(*run, p, "tool_version", &rec->tool_version));
  if (run->contains("cluster_name")) {
    CB_RETURN_IF_ERROR(r.String(*run, p, "cluster_name", &rec->cluster_name));
  }
  CB_RETURN_IF_ERROR(
      r.Enum(*run, p, "status", {"ok", "invalid", "failed", "skipped"}, &rec->status));
  return r.String(*run, p, "status_message", &rec->status_message);
}

Status ReadWorkload(const Reader& r, const json& doc, RunRecord* rec) {
  const json* w;
  CB_RETURN_IF_ERROR(r.Object(doc, "", "workload", &w));
  const std::string p = "workload";
  WorkloadSpec& ws = rec->workload;
  CB_RETURN_IF_ERROR(r.String(*w, p, "model_ref", &ws.model_ref));
  CB_RETURN_IF_ERROR(r.String(*w, p, "scenario", &ws.scenario));
  CB_RETURN_IF_ERROR(r.String(*w, p, "backend", &ws.backend));
  std::string dtype;
  CB_RETURN_IF_ERROR(r.Enum(*w, p, "dtype", {"fp32", "bf16", "fp16", "fp8", "int8"}, &dtype));
  ws.dtype = *ParseDType(dtype);
  if (w->contains("kv_dtype")) {  // schema 1.2
    std::string kv;
    CB_RETURN_IF_ERROR(r.Enum(*w, p, "kv_dtype", {"fp32", "bf16", "fp16", "fp8", "int8"}, &kv));
    if (*ParseDType(kv) != DefaultKvDType(ws.dtype)) ws.kv_dtype = *ParseDType(kv);
  }
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*w, p, "batch", &ws.batch, 0));
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*w, p, "prompt_len", &ws.prompt_len, 0));
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*w, p, "gen_len", &ws.gen_len, 0));
  CB_RETURN_IF_ERROR(r.Integer<int>(*w, p, "layers", &ws.layers, 0));
  CB_RETURN_IF_ERROR(r.Integer<int>(*w, p, "layers_run", &rec->layers_run, 0));
  int64_t model_layers = 0;  // derived from model.num_layers; checked for type only
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*w, p, "model_layers", &model_layers, 0));
  CB_RETURN_IF_ERROR(ReadLayerPlan(r, *w, p, &rec->layer_plan));
  CB_RETURN_IF_ERROR(r.Bool(*w, p, "extrapolated", &rec->extrapolated));
  CB_RETURN_IF_ERROR(r.String(*w, p, "extrapolation_method", &rec->extrapolation_method));
  CB_RETURN_IF_ERROR(r.Integer<uint64_t>(*w, p, "seed", &ws.seed));
  CB_RETURN_IF_ERROR(r.Integer<int>(*w, p, "repetitions", &ws.repetitions, 0));
  CB_RETURN_IF_ERROR(r.Integer<int>(*w, p, "warmup", &ws.warmup, 0));
  CB_RETURN_IF_ERROR(r.Bool(*w, p, "verify", &ws.verify));
  return r.Integer<int>(*w, p, "verify_len", &ws.verify_len, 0);
}

Status ReadModel(const Reader& r, const json& doc, ModelSpec* m) {
  const json* o;
  CB_RETURN_IF_ERROR(r.Object(doc, "", "model", &o));
  const std::string p = "model";
  CB_RETURN_IF_ERROR(r.String(*o, p, "name", &m->name));
  CB_RETURN_IF_ERROR(r.String(*o, p, "family", &m->family));
  CB_RETURN_IF_ERROR(r.String(*o, p, "source", &m->source));
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*o, p, "hidden_size", &m->hidden_size, 0));
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*o, p, "num_layers", &m->num_layers, 0));
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*o, p, "num_heads", &m->num_heads, 0));
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*o, p, "num_kv_heads", &m->num_kv_heads, 0));
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*o, p, "head_dim", &m->head_dim, 0));
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*o, p, "ffn_size", &m->ffn_size, 0));
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*o, p, "vocab_size", &m->vocab_size, 0));
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*o, p, "max_context", &m->max_context, 0));
  CB_RETURN_IF_ERROR(r.Number(*o, p, "rope_theta", &m->rope_theta));
  CB_RETURN_IF_ERROR(r.Number(*o, p, "norm_eps", &m->norm_eps));
  CB_RETURN_IF_ERROR(r.Bool(*o, p, "tie_embeddings", &m->tie_embeddings));
  CB_RETURN_IF_ERROR(r.Bool(*o, p, "qk_norm", &m->qk_norm));
  CB_RETURN_IF_ERROR(r.Number(*o, p, "published_params", &m->published_params));
  int64_t total = 0;  // derived from the shape; checked for type only
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*o, p, "total_params", &total, 0));
  // Optional: MoE and MLA shapes, active parameters (older records have none).
  if (o->contains("published_active_params")) {
    CB_RETURN_IF_ERROR(r.Number(*o, p, "published_active_params", &m->published_active_params));
  }
  if (o->contains("moe")) {
    const json* e;
    CB_RETURN_IF_ERROR(r.Object(*o, p, "moe", &e));
    const std::string q = p + ".moe";
    MoeSpec& x = m->moe;
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(*e, q, "num_experts", &x.num_experts, 0));
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(*e, q, "experts_per_token", &x.experts_per_token, 0));
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(*e, q, "expert_ffn_size", &x.expert_ffn_size, 0));
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(*e, q, "num_shared_experts", &x.num_shared_experts, 0));
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(*e, q, "shared_ffn_size", &x.shared_ffn_size, 0));
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(*e, q, "first_dense_layers", &x.first_dense_layers, 0));
    CB_RETURN_IF_ERROR(r.String(*e, q, "router_scoring", &x.scoring));
    CB_RETURN_IF_ERROR(r.Bool(*e, q, "norm_topk_prob", &x.norm_topk));
    CB_RETURN_IF_ERROR(r.Number(*e, q, "routed_scaling_factor", &x.routed_scaling));
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(*e, q, "n_group", &x.num_groups, 0));
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(*e, q, "topk_group", &x.topk_groups, 0));
    CB_RETURN_IF_ERROR(r.Bool(*e, q, "router_bias", &x.router_bias));
    CB_RETURN_IF_ERROR(r.Number(*e, q, "routing_zipf_s", &m->routing_zipf_s));
  }
  if (o->contains("mla")) {
    const json* a;
    CB_RETURN_IF_ERROR(r.Object(*o, p, "mla", &a));
    const std::string q = p + ".mla";
    MlaSpec& x = m->mla;
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(*a, q, "q_lora_rank", &x.q_lora_rank, 0));
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(*a, q, "kv_lora_rank", &x.kv_lora_rank, 0));
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(*a, q, "qk_nope_head_dim", &x.qk_nope_head_dim, 0));
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(*a, q, "qk_rope_head_dim", &x.qk_rope_head_dim, 0));
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(*a, q, "v_head_dim", &x.v_head_dim, 0));
  }
  if (o->contains("active_params")) {
    int64_t active = 0;  // derived
    CB_RETURN_IF_ERROR(r.Integer<int64_t>(*o, p, "active_params", &active, 0));
  }
  return Status::Ok();
}

Status ReadDevice(const Reader& r, const json& doc, DeviceProps* d) {
  const json* o;
  CB_RETURN_IF_ERROR(r.Object(doc, "", "device", &o));
  const std::string p = "device";
  CB_RETURN_IF_ERROR(r.String(*o, p, "backend", &d->backend));
  CB_RETURN_IF_ERROR(r.String(*o, p, "name", &d->name));
  CB_RETURN_IF_ERROR(r.String(*o, p, "kind", &d->kind));
  CB_RETURN_IF_ERROR(r.String(*o, p, "uuid", &d->uuid));
  CB_RETURN_IF_ERROR(r.String(*o, p, "host", &d->host));
  double peak[kDTypeCount];
  CB_RETURN_IF_ERROR(ReadPerDType(r, *o, p, "peak_flops", peak));
  for (int i = 0; i < kDTypeCount; ++i) d->peak_flops[i] = peak[i];
  CB_RETURN_IF_ERROR(r.Number(*o, p, "mem_bandwidth_bytes_per_s", &d->mem_bandwidth_bytes_per_s));
  CB_RETURN_IF_ERROR(r.Integer<uint64_t>(*o, p, "mem_bytes", &d->mem_bytes));
  CB_RETURN_IF_ERROR(r.Integer<int>(*o, p, "threads", &d->threads, 0));
  CB_RETURN_IF_ERROR(r.String(*o, p, "isa", &d->isa));
  return r.Bool(*o, p, "simulated", &d->simulated);
}

Status ReadCeilings(const Reader& r, const json& doc, Ceilings* c) {
  const json* o;
  CB_RETURN_IF_ERROR(r.Object(doc, "", "ceilings", &o));
  const std::string p = "ceilings";
  CB_RETURN_IF_ERROR(ReadPerDType(r, *o, p, "matmul_flops_per_s", c->matmul_flops_per_s));
  CB_RETURN_IF_ERROR(r.Number(*o, p, "mem_read_bytes_per_s", &c->mem_read_bytes_per_s));
  CB_RETURN_IF_ERROR(r.String(*o, p, "source", &c->source));
  return r.String(*o, p, "measured_at", &c->measured_at);
}

Status ReadMetrics(const Reader& r, const json& doc, std::vector<Metric>* out) {
  const json* o;
  CB_RETURN_IF_ERROR(r.Object(doc, "", "metrics", &o));
  for (auto it = o->begin(); it != o->end(); ++it) {
    const std::string p = Reader::Join("metrics", it.key());
    if (!it->is_object()) return r.Expected(p, "object", *it);
    Metric m;
    m.name = it.key();
    CB_RETURN_IF_ERROR(r.Number(*it, p, "value", &m.value));
    CB_RETURN_IF_ERROR(r.String(*it, p, "unit", &m.unit));
    std::string how;
    CB_RETURN_IF_ERROR(r.Enum(*it, p, "how", {"measured", "modelled", "extrapolated"}, &how));
    m.how = how == "measured"   ? Provenance::kMeasured
            : how == "modelled" ? Provenance::kModelled
                                : Provenance::kExtrapolated;
    if (it->contains("distribution")) {
      const json* d;
      CB_RETURN_IF_ERROR(r.Object(*it, p, "distribution", &d));
      const std::string dp = Reader::Join(p, "distribution");
      m.has_distribution = true;
      uint64_t count = 0;
      CB_RETURN_IF_ERROR(r.Integer<uint64_t>(*d, dp, "count", &count));
      m.dist.count = static_cast<size_t>(count);
      CB_RETURN_IF_ERROR(r.Number(*d, dp, "mean", &m.dist.mean));
      CB_RETURN_IF_ERROR(r.Number(*d, dp, "p50", &m.dist.p50));
      CB_RETURN_IF_ERROR(r.Number(*d, dp, "p90", &m.dist.p90));
      CB_RETURN_IF_ERROR(r.Number(*d, dp, "p99", &m.dist.p99));
      CB_RETURN_IF_ERROR(r.Number(*d, dp, "min", &m.dist.min));
      CB_RETURN_IF_ERROR(r.Number(*d, dp, "max", &m.dist.max));
      CB_RETURN_IF_ERROR(r.Number(*d, dp, "stddev", &m.dist.stddev));
      CB_RETURN_IF_ERROR(r.Number(*d, dp, "cv", &m.dist.cv));
    }
    out->push_back(std::move(m));
  }
  return Status::Ok();
}

Status ReadSamples(const Reader& r, const json& doc, std::vector<RepetitionSample>* out) {
  const json* a;
  CB_RETURN_IF_ERROR(r.Array(doc, "", "samples", &a));
  for (size_t i = 0; i < a->size(); ++i) {
    const json& s = (*a)[i];
    const std::string p = Reader::Index("samples", i);
    if (!s.is_object()) return r.Expected(p, "object", s);
    RepetitionSample rs;
    CB_RETURN_IF_ERROR(r.Number(s, p, "prefill_s", &rs.prefill_s));
    const json* steps;
    CB_RETURN_IF_ERROR(r.Array(s, p, "decode_step_s", &steps));
    rs.decode_step_s.resize(steps->size());
    for (size_t j = 0; j < steps->size(); ++j) {
      CB_RETURN_IF_ERROR(
          r.NumberValue((*steps)[j], Reader::Index(p + ".decode_step_s", j), &rs.decode_step_s[j]));
    }
    CB_RETURN_IF_ERROR(r.Number(s, p, "e2e_s", &rs.e2e_s));
    CB_RETURN_IF_ERROR(r.Number(s, p, "backend_s", &rs.backend_s));
    out->push_back(std::move(rs));
  }
  return Status::Ok();
}

Status ReadVerification(const Reader& r, const json& doc, Verification* v) {
  const json* o;
  CB_RETURN_IF_ERROR(r.Object(doc, "", "verification", &o));
  const std::string p = "verification";
  CB_RETURN_IF_ERROR(r.Enum(*o, p, "status", {"passed", "failed", "not_run"}, &v->status));
  CB_RETURN_IF_ERROR(r.String(*o, p, "message", &v->message));
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*o, p, "sequences", &v->sequences, 0));
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*o, p, "positions", &v->positions, 0));
  CB_RETURN_IF_ERROR(r.Number(*o, p, "max_abs_error", &v->max_abs_error));
  CB_RETURN_IF_ERROR(r.Number(*o, p, "max_rel_error", &v->max_rel_error));
  CB_RETURN_IF_ERROR(r.Number(*o, p, "tolerance", &v->tolerance));
  CB_RETURN_IF_ERROR(r.Number(*o, p, "argmax_agreement", &v->argmax_agreement));
  for (auto [key, field] : {std::pair{"route_decisions", &v->route_decisions},
                            std::pair{"route_flips", &v->route_flips}}) {
    if (o->contains(key)) CB_RETURN_IF_ERROR(r.Integer<int64_t>(*o, p, key, field, 0));
  }
  if (o->contains("route_logit_error")) {
    CB_RETURN_IF_ERROR(r.Number(*o, p, "route_logit_error", &v->route_logit_error));
  }
  return r.Bool(*o, p, "nan_found", &v->nan_found);
}

Status ReadAccuracy(const Reader& r, const json& doc, RunRecord* rec) {
  if (doc.contains("precision"))
    CB_RETURN_IF_ERROR(r.String(doc, "", "precision", &rec->precision));
  if (!doc.contains("accuracy")) return Status::Ok();
  const json* o;
  CB_RETURN_IF_ERROR(r.Object(doc, "", "accuracy", &o));
  const std::string p = "accuracy";
  AccuracyRecord a;
  CB_RETURN_IF_ERROR(r.String(*o, p, "baseline_dtype", &a.baseline_dtype));
  CB_RETURN_IF_ERROR(r.Integer<int64_t>(*o, p, "positions", &a.positions, 0));
  CB_RETURN_IF_ERROR(r.Number(*o, p, "top1_agreement", &a.top1_agreement));
  CB_RETURN_IF_ERROR(r.Number(*o, p, "mean_kl_divergence", &a.mean_kl_divergence));
  rec->accuracy = a;
  return Status::Ok();
}

}  // namespace

Status FromJson(const json& doc, const std::string& origin, RunRecord* out) {
  if (!doc.is_object()) {
    return Status::InvalidInput(origin + ": expected a JSON object (one run record), got " +
                                std::string(doc.type_name()));
  }
  const Reader r(origin);
  RunRecord rec;
  CB_RETURN_IF_ERROR(r.String(doc, "", "schema_version", &rec.schema_version));
  // Same major version: readable (later minor versions only add fields, which are ignored).
  const std::string& sv = rec.schema_version;
  if (sv.substr(0, sv.find('.')) != "1") {
    return r.Error("schema_version", "unsupported version '" + sv + "'; this build reads 1.x");
  }
  CB_RETURN_IF_ERROR(ReadRun(r, doc, &rec));
  CB_RETURN_IF_ERROR(ReadWorkload(r, doc, &rec));
  CB_RETURN_IF_ERROR(ReadModel(r, doc, &rec.workload.model));
  CB_RETURN_IF_ERROR(ReadDevice(r, doc, &rec.device));
  CB_RETURN_IF_ERROR(ReadCeilings(r, doc, &rec.ceilings));
  CB_RETURN_IF_ERROR(ReadMetrics(r, doc, &rec.metrics));
  CB_RETURN_IF_ERROR(ReadSamples(r, doc, &rec.samples));
  CB_RETURN_IF_ERROR(ReadVerification(r, doc, &rec.verification));
  CB_RETURN_IF_ERROR(ReadAccuracy(r, doc, &rec));
  const json* tokens;
  CB_RETURN_IF_ERROR(r.Array(doc, "", "generated_tokens", &tokens));
  rec.generated_tokens.resize(tokens->size());
  for (size_t i = 0; i < tokens->size(); ++i) {
    CB_RETURN_IF_ERROR(r.IntegerValue<int32_t>((*tokens)[i], Reader::Index("generated_tokens", i),
                                               &rec.generated_tokens[i], 0));
  }
  // Optional sections (schema 1.1); files of 1.0 have neither.
  if (doc.contains("cluster")) {
    ClusterRecord c;
    CB_RETURN_IF_ERROR(ClusterRecordFromJson(doc["cluster"], origin, &c));
    rec.cluster = std::move(c);
  }
  if (doc.contains("deployment")) {  // schema 1.2
    DeploymentRecord d;
    CB_RETURN_IF_ERROR(DeploymentRecordFromJson(doc["deployment"], origin, &d));
    rec.deployment = std::move(d);
  }
  if (doc.contains("energy")) {
    EnergyRecord e;
    CB_RETURN_IF_ERROR(EnergyRecordFromJson(doc["energy"], origin, &e));
    rec.energy = std::move(e);
  }
  if (doc.contains("cost")) {
    CostRecord c;
    CB_RETURN_IF_ERROR(CostRecordFromJson(doc["cost"], origin, &c));
    rec.cost = std::move(c);
  }
  if (doc.contains("serving")) {
    ServingRecord sv;
    CB_RETURN_IF_ERROR(ServingRecordFromJson(doc["serving"], origin, &sv));
    // The offered load is part of the workload (a series label, see the Prometheus mapping).
    rec.workload.serving.rate = std::isfinite(sv.target_rate) ? sv.target_rate : 0;
    rec.workload.serving.concurrency = sv.concurrency;
    rec.serving = std::move(sv);
  }
  if (doc.contains("validity")) {
    ValidityRecord v;
    CB_RETURN_IF_ERROR(ValidityRecordFromJson(doc["validity"], origin, &v));
    rec.validity = std::move(v);
  }
  if (doc.contains("sweep")) {
    SweepRecord sw;
    CB_RETURN_IF_ERROR(SweepRecordFromJson(doc["sweep"], origin, &sw));
    rec.sweep = std::move(sw);
  }
  if (doc.contains("endpoint")) {  // schema 1.2, optional
    EndpointRecord e;
    CB_RETURN_IF_ERROR(EndpointRecordFromJson(doc["endpoint"], origin, &e));
    rec.endpoint = std::move(e);
  }
  if (doc.contains("op_breakdown")) {
    OpBreakdownRecord b;
    CB_RETURN_IF_ERROR(OpBreakdownRecordFromJson(doc["op_breakdown"], origin, &b));
    rec.op_breakdown = std::move(b);
  }
  if (doc.contains("ceiling_check")) {  // offline runs since the in-run ceiling probes
    CeilingCheckRecord c;
    CB_RETURN_IF_ERROR(CeilingCheckRecordFromJson(doc["ceiling_check"], origin, &c));
    rec.ceiling_check = std::move(c);
  }
  *out = std::move(rec);
  return Status::Ok();
}

}  // namespace cb
