#include "results/prometheus/pushgateway_admin.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace cb::prom {
namespace {

using nlohmann::json;

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

/// One HTTP request with a total timeout; the status code in *code, the body in *body.
Status Http(const std::string& method, const std::string& url, double timeout_s, long* code,
            std::string* body) {
  CURL* curl = curl_easy_init();
  if (!curl) return Status::Internal("curl_easy_init failed");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_s * 1000));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, code);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return Status::Internal(method + " " + url + ": " + curl_easy_strerror(rc));
  }
  if (*code < 200 || *code >= 300) {
    return Status::Internal(method + " " + url + ": HTTP " + std::to_string(*code) + ": " +
                            body->substr(0, 200));
  }
  return Status::Ok();
}

/// "http://host:9091/prefix" from a --push/--url value.
Status BaseUrl(const PushOptions& opts, std::string* out) {
  std::string host, port;
  CB_RETURN_IF_ERROR(ParsePushUrl(opts.url, &host, &port, "--url"));
  *out = host + ":" + port;
  return Status::Ok();
}

/// The largest value of a metric family in a group of /api/v1/metrics, -1 when absent.
double MaxValue(const json& group, const char* family) {
  double best = -1;
  if (!group.contains(family) || !group[family].contains("metrics")) return best;
  for (const json& m : group[family]["metrics"]) {
    if (!m.contains("value") || !m["value"].is_string()) continue;
    const double v = std::strtod(m["value"].get<std::string>().c_str(), nullptr);
    if (v == v) best = std::max(best, v);  // NaN compares false
  }
  return best;
}

}  // namespace

Status ListGatewayGroups(const PushOptions& opts, std::vector<GatewayGroup>* out) {
  std::string base, body;
  CB_RETURN_IF_ERROR(BaseUrl(opts, &base));
  long code = 0;
  CB_RETURN_IF_ERROR(Http("GET", base + "/api/v1/metrics", opts.timeout_s, &code, &body));
  const json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.contains("data") || !doc["data"].is_array()) {
    return Status::Internal(base + "/api/v1/metrics: not the Pushgateway's JSON API");
  }
  out->clear();
  for (const json& g : doc["data"]) {
    GatewayGroup group;
    if (!g.contains("labels") || !g["labels"].is_object()) continue;
    for (const auto& [k, v] : g["labels"].items()) {
      if (v.is_string() && !v.get<std::string>().empty()) group.labels[k] = v;
    }
    group.push_time_s = MaxValue(g, "push_time_seconds");
    group.last_run_s = MaxValue(g, "clusterbench_last_run_timestamp_seconds");
    out->push_back(std::move(group));
  }
  return Status::Ok();
}

Status DeleteGatewayGroup(const PushOptions& opts, const std::map<std::string, std::string>& key) {
  std::string url;
  CB_RETURN_IF_ERROR(BaseUrl(opts, &url));
  const auto job = key.find("job");
  if (job == key.end()) return Status::InvalidInput("a Pushgateway group without a job");
  LabelList labels = {{"job", job->second}};
  for (const auto& [k, v] : key) {
    if (k != "job") labels.emplace_back(k, v);
  }
  url += "/metrics";
  for (const auto& [k, v] : labels) {
    for (const auto& [name, value] : GroupingPathLabels({{k, v}})) url += "/" + name + "/" + value;
  }
  std::string body;
  long code = 0;
  return Http("DELETE", url, opts.timeout_s, &code, &body);
}

std::string StaleReason(const GatewayGroup& g, const std::string& job, double now_s,
                        double max_age_days,
                        const std::vector<std::map<std::string, std::string>>& current) {
  const auto j = g.labels.find("job");
  if (j == g.labels.end() || j->second != job) return "";
  const double seen = g.last_run_s >= 0 ? g.last_run_s : g.push_time_s;
  if (seen >= 0 && now_s - seen > max_age_days * 86400) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "not seen for %.1f days (limit %g)", (now_s - seen) / 86400,
                  max_age_days);
    return buf;
  }
  std::map<std::string, std::string> rest;
  bool legacy = false;
  for (const auto& [k, v] : g.labels) {
    if (k == "instance" || k == "Hostname" || k == "UUID") {
      legacy = true;
    } else {
      rest[k] = v;
    }
  }
  if (legacy && std::find(current.begin(), current.end(), rest) != current.end()) {
    return "superseded by the group without instance/Hostname/UUID in its key";
  }
  return "";
}

}  // namespace cb::prom
