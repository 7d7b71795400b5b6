#include "results/endpoint_record.h"

#include <cmath>
#include <limits>

#include "results/json_number.h"

namespace cb {
namespace {

using nlohmann::json;

}  // namespace

json EndpointRecordToJson(const EndpointRecord& e) {
  json reqs = json::array();
  for (const EndpointRequestRecord& r : e.requests) {
    json o = {{"requested_prompt_len", r.requested_prompt_len},
              {"requested_output_len", r.requested_output_len},
              {"prompt_tokens", r.prompt_tokens},
              {"completion_tokens", r.completion_tokens},
              {"stream_chunks", r.stream_chunks},
              {"finish_reason", r.finish_reason},
              {"outcome", r.outcome}};
    if (!r.error.empty()) o["error"] = r.error;
    reqs.push_back(std::move(o));
  }
  return {{"url", e.url},
          {"api", e.api},
          {"requested_model", e.requested_model},
          {"server_model", e.server_model},
          {"served_models", e.served_models},
          {"prompts", e.prompts},
          {"dataset_name", e.dataset_name},
          {"dataset_format", e.dataset_format},
          {"dataset_sha256", e.dataset_sha256},
          {"dataset_entries", e.dataset_entries},
          {"ignore_eos", e.ignore_eos},
          {"api_key_env", e.api_key_env},
          {"length_source", e.length_source},
          {"connect_timeout_s", FiniteOrNull(e.connect_timeout_s)},
          {"request_timeout_s", FiniteOrNull(e.request_timeout_s)},
          {"stall_timeout_s", FiniteOrNull(e.stall_timeout_s)},
          {"run_timeout_s", FiniteOrNull(e.run_timeout_s)},
          {"max_failure_ratio", FiniteOrNull(e.max_failure_ratio)},
          {"requests_issued", e.requests_issued},
          {"requests_ok", e.requests_ok},
          {"requests_failed", e.requests_failed},
          {"requests_cancelled", e.requests_cancelled},
          {"requests_not_sent", e.requests_not_sent},
          {"failures", e.failures},
          {"stopped_early", e.stopped_early},
          {"warmup_failed", e.warmup_failed},
          {"max_in_flight", e.max_in_flight},
          {"client_cpu_s", FiniteOrNull(e.client_cpu_s)},
          {"client_cpu_ratio", FiniteOrNull(e.client_cpu_ratio)},
          {"declared_hardware", e.declared_hardware},
          {"declared_devices", e.declared_devices},
          {"notes", e.notes},
          {"requests", std::move(reqs)}};
}

Status EndpointRecordFromJson(const json& j, const std::string& origin, EndpointRecord* out) {
  try {
    EndpointRecord e;
    j.at("url").get_to(e.url);
    j.at("api").get_to(e.api);
    j.at("requested_model").get_to(e.requested_model);
    j.at("server_model").get_to(e.server_model);
    j.at("served_models").get_to(e.served_models);
    j.at("prompts").get_to(e.prompts);
    j.at("dataset_name").get_to(e.dataset_name);
    j.at("dataset_format").get_to(e.dataset_format);
    j.at("dataset_sha256").get_to(e.dataset_sha256);
    j.at("dataset_entries").get_to(e.dataset_entries);
    j.at("ignore_eos").get_to(e.ignore_eos);
    j.at("api_key_env").get_to(e.api_key_env);
    j.at("length_source").get_to(e.length_source);
    e.connect_timeout_s = NumberOrNaN(j.at("connect_timeout_s"));
    e.request_timeout_s = NumberOrNaN(j.at("request_timeout_s"));
    e.stall_timeout_s = NumberOrNaN(j.at("stall_timeout_s"));
    e.run_timeout_s = NumberOrNaN(j.at("run_timeout_s"));
    e.max_failure_ratio = NumberOrNaN(j.at("max_failure_ratio"));
    j.at("requests_issued").get_to(e.requests_issued);
    j.at("requests_ok").get_to(e.requests_ok);
    j.at("requests_failed").get_to(e.requests_failed);
    j.at("requests_cancelled").get_to(e.requests_cancelled);
    j.at("requests_not_sent").get_to(e.requests_not_sent);
    j.at("failures").get_to(e.failures);
    j.at("stopped_early").get_to(e.stopped_early);
    j.at("warmup_failed").get_to(e.warmup_failed);
    j.at("max_in_flight").get_to(e.max_in_flight);
    e.client_cpu_s = NumberOrNaN(j.at("client_cpu_s"));
    e.client_cpu_ratio = NumberOrNaN(j.at("client_cpu_ratio"));
    j.at("declared_hardware").get_to(e.declared_hardware);
    j.at("declared_devices").get_to(e.declared_devices);
    j.at("notes").get_to(e.notes);
    for (const json& r : j.at("requests")) {
      EndpointRequestRecord q;
      r.at("requested_prompt_len").get_to(q.requested_prompt_len);
      r.at("requested_output_len").get_to(q.requested_output_len);
      r.at("prompt_tokens").get_to(q.prompt_tokens);
      r.at("completion_tokens").get_to(q.completion_tokens);
      r.at("stream_chunks").get_to(q.stream_chunks);
      r.at("finish_reason").get_to(q.finish_reason);
      r.at("outcome").get_to(q.outcome);
      q.error = r.value("error", std::string());
      e.requests.push_back(std::move(q));
    }
    *out = std::move(e);
  } catch (const json::exception& ex) {
    return Status::InvalidInput(origin + ": field 'endpoint': " + ex.what());
  }
  return Status::Ok();
}

}  // namespace cb
