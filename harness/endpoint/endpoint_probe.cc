#include "harness/endpoint/endpoint_probe.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "harness/cancel.h"
#include "harness/endpoint/endpoint_pass.h"

namespace cb {

ProbeResult ProbeEndpoint(StreamClient& client, const WorkloadSpec& w, const EndpointTarget& t) {
  ProbeResult p;
  const EndpointSpec& e = w.endpoint;
  const std::string url = t.url.For("/models");
  TransferResult r;
  const double wait = e.connect_timeout + std::min(e.request_timeout, 30.0);
  if (Status s = FetchOnce(client, {url, ""}, wait, &r, &CancelRequested); !s.ok()) {
    p.failure = "transport";
    p.message = s.message();
    return p;
  }
  if (CancelRequested()) {
    p.cancelled = true;
    return p;
  }
  if (r.error != TransferError::kNone) {
    p.failure = r.error == TransferError::kTransport ? "transport" : TransferErrorName(r.error);
    p.message = "cannot reach " + t.url.Base() + " (GET " + url + "): " + r.error_message;
    return p;
  }
  if (r.http_status == 401 || r.http_status == 403) {
    p.failure = "http_" + std::to_string(r.http_status);
    p.message =
        "the server refused the request (HTTP " + std::to_string(r.http_status) + ") " +
        (e.api_key_env.empty() ? "and wants an API key: export it and pass --api-key-env NAME"
                               : "with the key from $" + e.api_key_env + ": check the key");
    return p;
  }
  const std::string wanted = !e.served_model.empty() ? e.served_model : w.model.name;
  p.model = wanted;
  if (r.http_status != 200) {
    p.ok = true;
    p.notes.push_back("GET /models answered HTTP " + std::to_string(r.http_status) +
                      "; the model name '" + wanted + "' was not checked");
    return p;
  }
  const nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("data") && j["data"].is_array()) {
    for (const auto& m : j["data"]) {
      if (m.is_object() && m.contains("id") && m["id"].is_string()) {
        p.served_models.push_back(m["id"].get<std::string>());
      }
    }
  }
  const auto& served = p.served_models;
  if (served.empty() || std::find(served.begin(), served.end(), wanted) != served.end()) {
    p.ok = true;
    if (served.empty()) p.notes.push_back("GET /models listed no models; '" + wanted + "' sent");
    return p;
  }
  std::string list;
  for (const std::string& m : served) list += (list.empty() ? "" : ", ") + m;
  if (e.served_model.empty() && served.size() == 1) {
    p.ok = true;
    p.model = served.front();
    p.notes.push_back("the server does not serve '" + wanted + "'; it serves only '" +
                      served.front() + "', which was used (--served-model NAME sets it)");
    return p;
  }
  p.failure = "model";
  p.message = "the server does not serve '" + wanted + "'; it serves " + list +
              " (pick one with --served-model NAME)";
  return p;
}

}  // namespace cb
