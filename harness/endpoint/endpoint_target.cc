#include "harness/endpoint/endpoint_target.h"

#include <cstdlib>
#include <fstream>

#include "backends/sim/sim_device.h"

namespace cb {
namespace {

std::string KnownIds(const DeviceCatalog& catalog, const char* type) {
  std::string s;
  for (const CatalogEntry& e : catalog.entries()) {
    if (e.type == type) s += (s.empty() ? "" : ", ") + e.id;
  }
  return s;
}

/// The record's device section: the declared hardware's catalog figures.
DeviceProps PropsOf(const EndpointTarget& t) {
  DeviceProps p;
  p.backend = "endpoint";
  p.host = t.url.HostPort();
  if (t.hardware == nullptr) {
    p.name = "undeclared";
    p.kind = "unknown";
    return p;
  }
  p.name = t.hardware->name;
  p.kind = t.device_entry->kind;
  for (const auto& [dtype, fig] : t.device_entry->peak_flops) {
    const auto d = ParseDType(dtype);
    if (d && fig.known()) p.peak_flops[static_cast<int>(*d)] = fig.value;
  }
  if (t.device_entry->mem_bandwidth_bytes_per_s.known()) {
    p.mem_bandwidth_bytes_per_s = t.device_entry->mem_bandwidth_bytes_per_s.value;
  }
  if (t.device_entry->mem_bytes.known()) {
    p.mem_bytes = static_cast<uint64_t>(t.device_entry->mem_bytes.value);
  }
  return p;
}

}  // namespace

Status ResolveEndpointTarget(const WorkloadSpec& w, const DeviceCatalog& catalog,
                             const std::string& where,
                             std::map<std::string, std::shared_ptr<const Dataset>>* datasets,
                             EndpointTarget* out) {
  auto bad = [&](const char* field, const std::string& what) {
    return Status::InvalidInput(where + ": field '" + field + "': " + what);
  };
  EndpointTarget t;
  CB_RETURN_IF_ERROR(ParseEndpointBackend(w.backend, where, &t.url));
  const EndpointSpec& e = w.endpoint;
  if (!ParseApiName(e.api, &t.api)) return bad("api", "allowed values: completions, chat");
  if (!e.api_key_env.empty()) {
    const char* key = std::getenv(e.api_key_env.c_str());
    if (key == nullptr || *key == '\0') {
      return bad("api_key_env", "the environment variable " + e.api_key_env +
                                    " is not set (or empty); export the key in it");
    }
    t.api_key = key;
  }
  if (!e.ca_file.empty() && !std::ifstream(e.ca_file)) {
    return bad("ca_file", e.ca_file + ": cannot read the CA file");
  }
  if (!e.dataset.empty()) {
    auto& cached = (*datasets)[e.dataset + "\x1f" + e.dataset_format];
    if (!cached) {
      auto d = std::make_shared<Dataset>();
      CB_RETURN_IF_ERROR(LoadDataset(e.dataset, e.dataset_format, d.get()));
      cached = std::move(d);
    }
    t.dataset = cached;
  }
  const DeploymentSpec& d = w.deployment;
  if (!d.system.empty()) {
    t.hardware = sim::FindEntry(catalog, d.system);
    if (t.hardware == nullptr || t.hardware->type != "system") {
      return bad("system", "unknown system '" + d.system +
                               "'; allowed values: " + KnownIds(catalog, "system"));
    }
    t.device_entry = sim::FindEntry(catalog, t.hardware->device);
    if (t.device_entry == nullptr) {
      return bad("system",
                 d.system + " names device '" + t.hardware->device + "', which the catalog lacks");
    }
  } else if (!e.device.empty()) {
    t.hardware = sim::FindEntry(catalog, e.device);
    if (t.hardware == nullptr || t.hardware->type != "device") {
      return bad("device", "unknown catalog device '" + e.device +
                               "'; allowed values: " + KnownIds(catalog, "device"));
    }
    t.device_entry = t.hardware;
  }
  t.devices = d.devices > 0 ? d.devices
              : t.hardware != nullptr && t.hardware->type == "system"
                  ? static_cast<int>(t.hardware->device_count)
                  : 1;
  if (t.hardware != nullptr && t.hardware->type == "system" &&
      t.devices > t.hardware->device_count) {
    return bad("devices", std::to_string(t.devices) + " exceeds the " +
                              std::to_string(t.hardware->device_count) + " devices of " +
                              t.hardware->id);
  }
  if (!w.cost.catalog_device.empty()) {
    if (catalog.Find(w.cost.catalog_device) == nullptr) {
      return bad("catalog_device",
                 "unknown catalog device '" + w.cost.catalog_device + "'; known: " + catalog.Ids());
    }
    t.cost_entry = w.cost.catalog_device;
  } else if (t.hardware != nullptr) {
    const bool priced = t.hardware->purchase_usd.known() || t.hardware->rental_usd_per_hour.known();
    t.cost_entry = priced ? t.hardware->id : t.device_entry->id;
  }
  t.props = PropsOf(t);
  *out = std::move(t);
  return Status::Ok();
}

}  // namespace cb
