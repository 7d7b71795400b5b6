#include "results/deployment_record.h"

namespace cb {

using nlohmann::json;

json DeploymentRecordToJson(const DeploymentRecord& d) {
  json pools = json::array();
  for (const PoolRecord& p : d.pools) {
    pools.push_back({{"role", p.role},
                     {"devices", p.devices},
                     {"tp", p.tp},
                     {"dp", p.dp},
                     {"ep", p.ep},
                     {"sequences_per_rank", p.sequences_per_rank},
                     {"weight_bytes", p.weight_bytes},
                     {"kv_cache_bytes", p.kv_cache_bytes},
                     {"activation_bytes", p.activation_bytes},
                     {"memory_bytes", p.memory_bytes},
                     {"busy_ratio", p.busy_ratio},
                     {"communication_seconds", p.communication_seconds},
                     {"exposed_communication_seconds", p.exposed_communication_seconds}});
  }
  return {{"model_version", d.model_version},
          {"system", d.system},
          {"device", d.device},
          {"topology", d.topology},
          {"pools", pools},
          {"redundant_experts", d.redundant_experts},
          {"mtp", d.mtp},
          {"mtp_acceptance", d.mtp_acceptance},
          {"tokens_per_decode_step", d.tokens_per_decode_step},
          {"overlap", d.overlap},
          {"kv_dtype", d.kv_dtype},
          {"prefill_chunk_tokens", d.prefill_chunk_tokens},
          {"kv_transfer_seconds", d.kv_transfer_seconds},
          {"sources", d.sources},
          {"notes", d.notes}};
}

Status DeploymentRecordFromJson(const json& j, const std::string& origin, DeploymentRecord* out) {
  try {
    DeploymentRecord d;
    j.at("model_version").get_to(d.model_version);
    j.at("system").get_to(d.system);
    j.at("device").get_to(d.device);
    j.at("topology").get_to(d.topology);
    for (const json& p : j.at("pools")) {
      PoolRecord r;
      p.at("role").get_to(r.role);
      p.at("devices").get_to(r.devices);
      p.at("tp").get_to(r.tp);
      p.at("dp").get_to(r.dp);
      p.at("ep").get_to(r.ep);
      p.at("sequences_per_rank").get_to(r.sequences_per_rank);
      p.at("weight_bytes").get_to(r.weight_bytes);
      p.at("kv_cache_bytes").get_to(r.kv_cache_bytes);
      p.at("activation_bytes").get_to(r.activation_bytes);
      p.at("memory_bytes").get_to(r.memory_bytes);
      p.at("busy_ratio").get_to(r.busy_ratio);
      p.at("communication_seconds").get_to(r.communication_seconds);
      p.at("exposed_communication_seconds").get_to(r.exposed_communication_seconds);
      d.pools.push_back(r);
    }
    j.at("redundant_experts").get_to(d.redundant_experts);
    j.at("mtp").get_to(d.mtp);
    j.at("mtp_acceptance").get_to(d.mtp_acceptance);
    j.at("tokens_per_decode_step").get_to(d.tokens_per_decode_step);
    j.at("overlap").get_to(d.overlap);
    j.at("kv_dtype").get_to(d.kv_dtype);
    j.at("prefill_chunk_tokens").get_to(d.prefill_chunk_tokens);
    j.at("kv_transfer_seconds").get_to(d.kv_transfer_seconds);
    j.at("sources").get_to(d.sources);
    j.at("notes").get_to(d.notes);
    *out = std::move(d);
  } catch (const json::exception& e) {
    return Status::InvalidInput(origin + ": field 'deployment': " + e.what());
  }
  return Status::Ok();
}

}  // namespace cb
