#include "backends/energy/prometheus_meter.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "backends/energy/meter_factory.h"
#include "backends/energy/power_model_meter.h"

namespace cb::energy {
namespace {

constexpr const char* kAuto[] = {"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_POWER_USAGE",
                                 "npu_chip_info_power"};

std::string LabelKey(const std::map<std::string, std::string>& labels) {
  std::string k;
  for (const auto& [n, v] : labels) k += (k.empty() ? "" : ",") + n + "=\"" + v + "\"";
  return k;
}

size_t Collect(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<std::string*>(user);
  if (s->size() < (8u << 20)) s->append(data, size * n);
  return size * n;
}

Status HttpGet(const std::string& url, double timeout_s, std::string* body) {
  CURL* e = curl_easy_init();
  if (e == nullptr) return Status::Internal("curl_easy_init failed");
  char err[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_s * 1000));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_s * 1000));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
  const CURLcode code = curl_easy_perform(e);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(e);
  if (code != CURLE_OK) {
    return Status::Internal("scraping " + url + ": " + (err[0] ? err : curl_easy_strerror(code)));
  }
  if (status != 200)
    return Status::Internal("scraping " + url + ": HTTP " + std::to_string(status));
  return Status::Ok();
}

/// Reads `name{labels}` at `i`; advances `i` past it.
bool ReadSeries(std::string_view s, size_t* i, std::string* name,
                std::map<std::string, std::string>* labels) {
  size_t p = *i;
  while (p < s.size() &&
         (std::isalnum(static_cast<unsigned char>(s[p])) || s[p] == '_' || s[p] == ':')) {
    ++p;
  }
  *name = std::string(s.substr(*i, p - *i));
  if (name->empty()) return false;
  if (p < s.size() && s[p] == '{') {
    ++p;
    while (p < s.size() && s[p] != '}') {
      while (p < s.size() && (s[p] == ',' || s[p] == ' ')) ++p;
      if (p < s.size() && s[p] == '}') break;
      const size_t eq = s.find('=', p);
      if (eq == std::string_view::npos || eq + 1 >= s.size() || s[eq + 1] != '"') return false;
      std::string label(s.substr(p, eq - p));
      std::string value;
      p = eq + 2;
      while (p < s.size() && s[p] != '"') {
        if (s[p] == '\\' && p + 1 < s.size()) {
          ++p;
          value += s[p] == 'n' ? '\n' : s[p];
        } else {
          value += s[p];
        }
        ++p;
      }
      if (p >= s.size()) return false;
      ++p;  // closing quote
      (*labels)[label] = value;
    }
    if (p >= s.size()) return false;
    ++p;  // '}'
  }
  *i = p;
  return true;
}

}  // namespace

Status ParsePrometheusText(std::string_view text, std::vector<PromSample>* out) {
  out->clear();
  size_t line_no = 0, start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    PromSample s;
    size_t i = 0;
    if (!ReadSeries(line, &i, &s.name, &s.labels)) {
      return Status::InvalidInput("line " + std::to_string(line_no) + ": malformed sample");
    }
    while (i < line.size() && line[i] == ' ') ++i;
    const std::string rest(line.substr(i));
    char* used = nullptr;
    s.value = std::strtod(rest.c_str(), &used);
    if (used == rest.c_str()) {
      return Status::InvalidInput("line " + std::to_string(line_no) + ": no value");
    }
    out->push_back(std::move(s));
  }
  return Status::Ok();
}

bool PromSelector::Matches(const PromSample& s) const {
  if (s.name != name) return false;
  for (const auto& [k, v] : labels) {
    auto it = s.labels.find(k);
    if (it == s.labels.end() || it->second != v) return false;
  }
  return true;
}

std::string PromSelector::text() const {
  return labels.empty() ? name : name + "{" + LabelKey(labels) + "}";
}

Status ParsePromSelector(const std::string& text, PromSelector* out) {
  *out = PromSelector{};
  size_t i = 0;
  if (!ReadSeries(text, &i, &out->name, &out->labels) || i != text.size()) {
    return Status::InvalidInput("'" + text + "' is not NAME or NAME{label=\"value\",...}");
  }
  return Status::Ok();
}

bool EnergyKindOf(const std::string& name, PromEnergyKind* out) {
  if (name == "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION") {
    *out = {true, 1e-3};
  } else if (name.ends_with("_joules_total") || name.ends_with("_joules")) {
    *out = {true, 1.0};
  } else if (name == "DCGM_FI_DEV_POWER_USAGE" || name == "npu_chip_info_power" ||
             name.ends_with("_watts")) {
    *out = {false, 1.0};
  } else {
    return false;
  }
  return true;
}

Status PrometheusEnergyMeter::Scrape(std::map<std::string, double>* values) {
  std::string body;
  CB_RETURN_IF_ERROR(HttpGet(opt_.url, opt_.timeout_s, &body));
  std::vector<PromSample> samples;
  if (Status s = ParsePrometheusText(body, &samples); !s.ok()) {
    return Status::Internal(opt_.url + ": " + s.message());
  }
  if (selector_.name.empty()) {  // auto: the first known metric the exporter has
    for (const char* name : kAuto) {
      for (const PromSample& s : samples) {
        if (s.name == name) selector_.name = name;
      }
      if (!selector_.name.empty()) break;
    }
    if (selector_.name.empty()) {
      return Status::Internal(opt_.url +
                              " has none of DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, "
                              "DCGM_FI_DEV_POWER_USAGE, npu_chip_info_power; name the metric "
                              "with --energy-metric");
    }
  }
  if (!EnergyKindOf(selector_.name, &kind_)) {
    return Status::Internal("cannot tell the unit of '" + selector_.name +
                            "': name an energy counter (DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, "
                            "*_joules_total) or a power gauge (DCGM_FI_DEV_POWER_USAGE, *_watts)");
  }
  values->clear();
  for (const PromSample& s : samples) {
    if (selector_.Matches(s)) (*values)[LabelKey(s.labels)] = s.value;
  }
  if (values->empty()) return Status::Internal(opt_.url + " has no series " + selector_.text());
  return Status::Ok();
}

Status PrometheusEnergyMeter::Start() {
  if (!opt_.selector.empty()) CB_RETURN_IF_ERROR(ParsePromSelector(opt_.selector, &selector_));
  CB_RETURN_IF_ERROR(Scrape(&start_values_));
  start_s_ = NowS();
  running_ = true;
  if (!kind_.counter) {
    double w = 0;
    for (const auto& [k, v] : start_values_) w += v;
    std::lock_guard<std::mutex> lock(mu_);
    last_t_ = start_s_;
    last_w_ = w;
    joules_ = 0;
    ticks_ = failed_ticks_ = 0;
    sampler_.Start(opt_.interval_s, [this] { Tick(); });
  }
  return Status::Ok();
}

void PrometheusEnergyMeter::Tick() {
  std::map<std::string, double> v;
  const bool ok = Scrape(&v).ok();
  const double t = NowS();
  std::lock_guard<std::mutex> lock(mu_);
  ++ticks_;
  if (!ok) {
    ++failed_ticks_;
    return;
  }
  double w = 0;
  for (const auto& [k, x] : v) w += x;
  joules_ += 0.5 * (w + last_w_) * (t - last_t_);
  last_t_ = t;
  last_w_ = w;
}

Status PrometheusEnergyMeter::StopReading(EnergyReading* out) {
  if (!running_) return Status::Internal("PrometheusEnergyMeter::Stop without Start");
  running_ = false;
  sampler_.Stop();
  EnergyReading r;
  r.source = "prometheus";
  std::map<std::string, double> end;
  const Status s = kind_.counter ? Scrape(&end) : Status::Ok();
  if (!kind_.counter) Tick();  // the window's last sample
  r.window_s = NowS() - start_s_;
  r.notes.push_back("read from " + opt_.url + " (" + selector_.text() + ", " +
                    (kind_.counter ? "energy counter" : "power gauge integrated") + ")");
  if (kind_.counter) {
    if (!s.ok()) return s;
    for (const auto& [k, v0] : start_values_) {
      auto it = end.find(k);
      const double j = it == end.end() ? NAN : (it->second - v0) * kind_.scale;
      if (!(j >= 0)) {
        r.valid = false;
        r.notes.push_back("series " + k + " vanished or went backwards (a counter reset)");
        continue;
      }
      if (j == 0) {
        r.valid = false;
        r.notes.push_back("series " + k +
                          " did not advance: the exporter updates less often than the run "
                          "lasted (dcgm-exporter: -c, default 30 s); run longer");
      }
      r.domains.push_back({selector_.name, k, j});
      r.joules += j;
    }
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    r.joules = joules_;
    r.sampling_interval_s = opt_.interval_s;
    r.domains.push_back({selector_.name, selector_.text(), joules_});
    if (failed_ticks_ > 0) {
      r.valid = false;
      r.notes.push_back(std::to_string(failed_ticks_) + " of " + std::to_string(ticks_) +
                        " scrapes failed (sampling gaps)");
    }
  }
  *out = std::move(r);
  return Status::Ok();
}

Status PrometheusEnergyMeter::Stop(double* joules) {
  EnergyReading r;
  CB_RETURN_IF_ERROR(StopReading(&r));
  *joules = r.joules;
  return Status::Ok();
}

Status MakeRemoteEnergyMeter(const std::string& choice, const std::string& prometheus_url,
                             const std::string& selector, const CatalogEntry* entry, int devices,
                             std::unique_ptr<EnergyMeter>* out, std::string* note) {
  out->reset();
  note->clear();
  if (choice == "rapl" || choice == "nvml") {
    return Status::InvalidInput("--energy " + choice +
                                " reads this host's counters, not the serving hardware's; for "
                                "an endpoint use --energy-metrics URL (its Prometheus exporter), "
                                "model or off");
  }
  if (!IsEnergyChoice(choice)) {
    return Status::InvalidInput("unknown energy source '" + choice +
                                "'; allowed values: auto, model, off");
  }
  if (choice == "off") return Status::Ok();
  std::unique_ptr<EnergyMeter> model;
  if (entry != nullptr && entry->tdp_w.known() && entry->idle_w.known()) {
    PowerModelOptions o;
    o.idle_w = entry->idle_w.value;
    o.tdp_w = entry->tdp_w.value;
    o.devices = std::max(1, devices);
    o.entry = entry->id;
    o.utilisation = 1.0;
    model = std::make_unique<PowerModelMeter>(o);
  }
  if (choice == "auto" && !prometheus_url.empty()) {
    PrometheusMeterOptions p;
    p.url = prometheus_url;
    p.selector = selector;
    auto prom = std::make_unique<PrometheusEnergyMeter>(p);
    if (model) {
      *out = std::make_unique<FallbackMeter>(std::move(prom), std::move(model));
    } else {
      *out = std::move(prom);
    }
    return Status::Ok();
  }
  if (!model) {
    if (choice == "model") {
      return Status::InvalidInput(
          "--energy model needs the serving hardware: declare it with --device or --system");
    }
    *note =
        "energy not reported: give --energy-metrics URL (the serving hardware's Prometheus "
        "exporter) or declare the hardware with --device/--system for the catalog power "
        "model";
    return Status::Ok();
  }
  *out = std::move(model);
  return Status::Ok();
}

}  // namespace cb::energy
