#include "backends/devices/catalog.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "harness/core/text_file.h"
#include "workloads/json_fields.h"
#include "workloads/model_spec.h"

namespace cb {
namespace {

using nlohmann::json;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

class EntryReader {
 public:
  explicit EntryReader(const std::string& origin) : origin_(origin) {}

  Status Error(const std::string& field, const std::string& what) const {
    return Status::InvalidInput(origin_ + ": field '" + field + "': " + what);
  }

  Status OnlyKnown(const json& obj, const std::string& path,
                   std::initializer_list<const char*> allowed) const {
    for (const auto& [key, value] : obj.items()) {
      bool known = false;
      std::string list;
      for (const char* a : allowed) {
        known |= key == a;
        list += (list.empty() ? "" : ", ") + std::string(a);
      }
      if (!known) return Error(Join(path, key), "unknown field; allowed fields are " + list);
    }
    return Status::Ok();
  }

  Status String(const json& obj, const char* key, bool required, std::string* out) const {
    if (!obj.contains(key)) return required ? Error(key, "is required") : Status::Ok();
    if (!obj[key].is_string()) return Error(key, "expected a string, got " + obj[key].dump());
    *out = obj[key].get<std::string>();
    if (required && out->empty()) return Error(key, "must not be empty");
    return Status::Ok();
  }

  /// {"value": number >= 0 | null, "source": "..."}; a known value needs a source.
  Status Figure(const json& obj, const std::string& path, const char* key, bool required,
                bool value_required, CatalogFigure* out) const {
    const std::string p = Join(path, key);
    out->value = std::numeric_limits<double>::quiet_NaN();
    if (!obj.contains(key)) return required ? Error(p, "is required") : Status::Ok();
    const json& f = obj[key];
    if (!f.is_object()) {
      return Error(
          p, "expected an object {\"value\": number or null, \"source\": string}, got " + f.dump());
    }
    CB_RETURN_IF_ERROR(OnlyKnown(f, p, {"value", "source"}));
    if (!f.contains("value")) return Error(p + ".value", "is required (null where unknown)");
    if (!f.contains("source") || !f["source"].is_string() ||
        f["source"].get<std::string>().empty()) {
      return Error(p + ".source", "is required: say where the figure comes from, or why unknown");
    }
    out->source = f["source"].get<std::string>();
    const json& v = f["value"];
    if (v.is_null()) {
      if (value_required) return Error(p + ".value", "must be known (a number), got null");
      return Status::Ok();
    }
    if (!v.is_number()) return Error(p + ".value", "expected a number or null, got " + v.dump());
    const double d = v.get<double>();
    if (!std::isfinite(d) || d < 0) {
      return Error(p + ".value", "expected a number >= 0, got " + v.dump());
    }
    out->value = d;
    return Status::Ok();
  }

  Status AllToAll(const json& obj, const std::string& path, const char* key,
                  AllToAllFigures* out) const {
    const std::string p = Join(path, key);
    if (!obj.contains(key)) return Error(p, "is required");
    const json& a = obj[key];
    if (!a.is_object()) return Error(p, "expected an object");
    CB_RETURN_IF_ERROR(OnlyKnown(
        a, p, {"scale_up_bytes_per_s", "scale_out_bytes_per_s", "latency_s", "compute_share"}));
    CB_RETURN_IF_ERROR(Figure(a, p, "compute_share", true, true, &out->compute_share));
    if (out->compute_share.value >= 1) return Error(p + ".compute_share.value", "must be below 1");
    CB_RETURN_IF_ERROR(
        Figure(a, p, "scale_up_bytes_per_s", true, true, &out->scale_up_bytes_per_s));
    CB_RETURN_IF_ERROR(
        Figure(a, p, "scale_out_bytes_per_s", true, true, &out->scale_out_bytes_per_s));
    return Figure(a, p, "latency_s", true, true, &out->latency_s);
  }

  /// The optional "interconnect" object: every figure known, each with its source.
  Status Links(const json& doc, Interconnect* out) const {
    if (!doc.contains("interconnect")) return Status::Ok();
    const json& ic = doc["interconnect"];
    const std::string p = "interconnect";
    if (!ic.is_object()) return Error(p, "expected an object");
    CB_RETURN_IF_ERROR(OnlyKnown(
        ic, p,
        {"domain_devices", "scale_up_bytes_per_s", "scale_up_latency_s", "scale_out_bytes_per_s",
         "scale_out_latency_s", "all_to_all_throughput", "all_to_all_low_latency"}));
    CB_RETURN_IF_ERROR(Figure(ic, p, "domain_devices", true, true, &out->domain_devices));
    if (out->domain_devices.value < 1 ||
        out->domain_devices.value != std::floor(out->domain_devices.value)) {
      return Error(p + ".domain_devices.value", "expected a whole number of devices >= 1");
    }
    for (auto [key, fig] : {std::pair{"scale_up_bytes_per_s", &out->scale_up_bytes_per_s},
                            {"scale_up_latency_s", &out->scale_up_latency_s},
                            {"scale_out_bytes_per_s", &out->scale_out_bytes_per_s},
                            {"scale_out_latency_s", &out->scale_out_latency_s}}) {
      CB_RETURN_IF_ERROR(Figure(ic, p, key, true, true, fig));
    }
    for (const CatalogFigure* f : {&out->scale_up_bytes_per_s, &out->scale_out_bytes_per_s}) {
      if (f->value <= 0) return Error(p, "link bandwidths must be greater than 0");
    }
    CB_RETURN_IF_ERROR(AllToAll(ic, p, "all_to_all_throughput", &out->throughput));
    CB_RETURN_IF_ERROR(AllToAll(ic, p, "all_to_all_low_latency", &out->low_latency));
    out->present = true;
    return Status::Ok();
  }

  static std::string Join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

 private:
  const std::string& origin_;
};

}  // namespace

bool CatalogFigure::known() const { return std::isfinite(value); }

bool AllToAllFigures::known() const {
  return scale_up_bytes_per_s.known() && scale_out_bytes_per_s.known() && latency_s.known();
}

std::string DefaultCatalogDir() { return DataDir() + "/backends/devices"; }

Status DeviceCatalog::ParseEntry(const std::string& text, const std::string& origin,
                                 CatalogEntry* out) {
  json doc;
  CB_RETURN_IF_ERROR(ParseJsonText(text, origin, &doc));
  if (!doc.is_object()) return Status::InvalidInput(origin + ": expected a JSON object");
  const EntryReader r(origin);
  CatalogEntry e;
  e.file = origin;
  CB_RETURN_IF_ERROR(r.String(doc, "type", false, &e.type));
  if (e.type.empty()) e.type = "device";
  if (e.type != "device" && e.type != "system") {
    return r.Error("type", "unknown value '" + e.type + "'; allowed values: device, system");
  }
  const bool system = e.type == "system";
  if (system) {
    CB_RETURN_IF_ERROR(r.OnlyKnown(
        doc, "",
        {"id", "type", "name", "kind", "vendor", "notes", "device", "device_count", "peak_flops",
         "all_in_power_w", "purchase_usd", "rental_usd_per_hour", "interconnect"}));
  } else {
    CB_RETURN_IF_ERROR(
        r.OnlyKnown(doc, "",
                    {"id", "type", "name", "kind", "vendor", "notes", "match", "fallback",
                     "peak_flops", "mem_bandwidth_bytes_per_s", "mem_bytes", "tdp_w", "idle_w",
                     "all_in_power_w", "purchase_usd", "rental_usd_per_hour", "interconnect"}));
  }
  CB_RETURN_IF_ERROR(r.String(doc, "id", true, &e.id));
  CB_RETURN_IF_ERROR(r.String(doc, "name", true, &e.name));
  CB_RETURN_IF_ERROR(r.String(doc, "kind", true, &e.kind));
  if (e.kind != "cpu" && e.kind != "gpu" && e.kind != "npu") {
    return r.Error("kind", "unknown value '" + e.kind + "'; allowed values: cpu, gpu, npu");
  }
  CB_RETURN_IF_ERROR(r.String(doc, "vendor", false, &e.vendor));
  CB_RETURN_IF_ERROR(r.String(doc, "notes", false, &e.notes));
  for (char c : e.id) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return r.Error("id", "'" + e.id + "' may hold only a-z, 0-9, '-', '_' and '.'");
    }
  }

  if (doc.contains("peak_flops")) {
    const json& pf = doc["peak_flops"];
    if (!pf.is_object()) return r.Error("peak_flops", "expected an object keyed by dtype");
    CB_RETURN_IF_ERROR(r.OnlyKnown(pf, "peak_flops",
                                   {"fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4"}));
    for (const auto& [dtype, value] : pf.items()) {
      CatalogFigure f;
      CB_RETURN_IF_ERROR(r.Figure(pf, "peak_flops", dtype.c_str(), true, false, &f));
      e.peak_flops[dtype] = f;
    }
  }
  CB_RETURN_IF_ERROR(r.Figure(doc, "", "all_in_power_w", true, true, &e.all_in_power_w));
  CB_RETURN_IF_ERROR(r.Figure(doc, "", "purchase_usd", false, false, &e.purchase_usd));
  CB_RETURN_IF_ERROR(
      r.Figure(doc, "", "rental_usd_per_hour", false, false, &e.rental_usd_per_hour));

  CB_RETURN_IF_ERROR(r.Links(doc, &e.interconnect));
  if (system) {
    if (!e.interconnect.present) {
      return r.Error("interconnect", "is required for a system (its links and all-to-all rates)");
    }
    CB_RETURN_IF_ERROR(r.String(doc, "device", true, &e.device));
    if (!doc.contains("device_count")) return r.Error("device_count", "is required");
    const json& n = doc["device_count"];
    if (!n.is_number_integer() || n.get<int64_t>() < 1) {
      return r.Error("device_count", "expected a positive integer, got " + n.dump());
    }
    e.device_count = n.get<int64_t>();
  } else {
    if (doc.contains("match")) {
      const json& m = doc["match"];
      if (!m.is_array()) return r.Error("match", "expected an array of patterns");
      for (size_t i = 0; i < m.size(); ++i) {
        const std::string p = "match[" + std::to_string(i) + "]";
        if (!m[i].is_string() || m[i].get<std::string>().empty()) {
          return r.Error(p, "expected a non-empty string (a regular expression)");
        }
        try {
          std::regex re(m[i].get<std::string>(), std::regex::ECMAScript | std::regex::icase);
        } catch (const std::regex_error& err) {
          return r.Error(p, std::string("not a valid regular expression: ") + err.what());
        }
        e.match.push_back(m[i].get<std::string>());
      }
    }
    if (doc.contains("fallback")) {
      if (!doc["fallback"].is_boolean()) return r.Error("fallback", "expected true or false");
      e.fallback = doc["fallback"].get<bool>();
    }
    CB_RETURN_IF_ERROR(
        r.Figure(doc, "", "mem_bandwidth_bytes_per_s", true, false, &e.mem_bandwidth_bytes_per_s));
    CB_RETURN_IF_ERROR(r.Figure(doc, "", "mem_bytes", true, false, &e.mem_bytes));
    CB_RETURN_IF_ERROR(r.Figure(doc, "", "tdp_w", true, true, &e.tdp_w));
    CB_RETURN_IF_ERROR(r.Figure(doc, "", "idle_w", true, true, &e.idle_w));
    if (e.tdp_w.value <= 0) return r.Error("tdp_w.value", "must be greater than 0");
    if (e.idle_w.value > e.tdp_w.value) {
      return r.Error("idle_w.value", "idle power (" + json(e.idle_w.value).dump() +
                                         " W) exceeds TDP (" + json(e.tdp_w.value).dump() + " W)");
    }
  }
  *out = std::move(e);
  return Status::Ok();
}

Status DeviceCatalog::Load(const std::string& dir, DeviceCatalog* out) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Status::InvalidInput(dir + ": device catalog directory not found");
  }
  std::vector<std::string> files;
  for (const auto& de : fs::directory_iterator(dir, ec)) {
    if (de.path().extension() == ".json") files.push_back(de.path().string());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) return Status::InvalidInput(dir + ": no *.json device files");
  DeviceCatalog cat;
  std::set<std::string> ids;
  for (const std::string& path : files) {
    std::string text;
    CB_RETURN_IF_ERROR(ReadTextFile(path, &text));
    CatalogEntry e;
    CB_RETURN_IF_ERROR(ParseEntry(text, path, &e));
    const std::string stem = fs::path(path).stem().string();
    if (e.id != stem) {
      return Status::InvalidInput(path + ": field 'id': '" + e.id +
                                  "' differs from the file name '" + stem + "'");
    }
    if (!ids.insert(e.id).second) {
      return Status::InvalidInput(path + ": field 'id': duplicate id '" + e.id + "'");
    }
    cat.entries_.push_back(std::move(e));
  }
  std::set<std::string> fallback_kinds;
  for (const CatalogEntry& e : cat.entries_) {
    if (e.fallback && !fallback_kinds.insert(e.kind).second) {
      return Status::InvalidInput(e.file + ": field 'fallback': another " + e.kind +
                                  " entry is already the fallback");
    }
    if (e.type != "system") continue;
    const CatalogEntry* d = cat.Find(e.device);
    if (d == nullptr || d->type != "device") {
      return Status::InvalidInput(e.file + ": field 'device': no device entry '" + e.device +
                                  "' in " + dir);
    }
  }
  *out = std::move(cat);
  return Status::Ok();
}

const CatalogEntry* DeviceCatalog::Find(const std::string& name) const {
  for (const CatalogEntry& e : entries_) {
    if (e.id == name) return &e;
  }
  for (const CatalogEntry& e : entries_) {
    if (Lower(e.name) == Lower(name)) return &e;
  }
  return nullptr;
}

const CatalogEntry* DeviceCatalog::Match(const std::string& model, const std::string& kind) const {
  const CatalogEntry* best = nullptr;
  size_t best_len = 0;
  for (const CatalogEntry& e : entries_) {
    if (e.type != "device" || (!kind.empty() && e.kind != kind)) continue;
    for (const std::string& pattern : e.match) {
      std::smatch m;
      const std::regex re(pattern, std::regex::ECMAScript | std::regex::icase);
      if (std::regex_search(model, m, re) &&
          (best == nullptr || static_cast<size_t>(m.length(0)) > best_len)) {
        best = &e;
        best_len = static_cast<size_t>(m.length(0));
      }
    }
  }
  if (best) return best;
  for (const CatalogEntry& e : entries_) {
    if (e.fallback && (kind.empty() || e.kind == kind)) return &e;
  }
  return nullptr;
}

std::string DeviceCatalog::Ids() const {
  std::string s;
  for (const CatalogEntry& e : entries_) s += (s.empty() ? "" : ", ") + e.id;
  return s;
}

}  // namespace cb
