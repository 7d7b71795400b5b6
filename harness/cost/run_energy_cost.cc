#include "harness/cost/run_energy_cost.h"

#include <fstream>

#include "backends/cpu/host_info.h"
#include "backends/energy/meter_factory.h"
#include "backends/energy/prometheus_meter.h"
#include "harness/cost/cost_model.h"
#include "harness/cost/energy_cost.h"

namespace cb {

std::string HostCpuModel() { return cpu::CpuModelName(); }

Status EnergyCostPlanner::Init(const std::string& catalog_dir, const std::string& energy) {
  if (!energy::IsEnergyChoice(energy)) {
    return Status::InvalidInput("command line: --energy: unknown value '" + energy +
                                "'; allowed values: auto, rapl, nvml, model, off");
  }
  energy_ = energy;
  return DeviceCatalog::Load(catalog_dir.empty() ? DefaultCatalogDir() : catalog_dir, &catalog_);
}

Status EnergyCostPlanner::ResolveEntry(const DeviceCatalog& catalog,
                                       const std::string& catalog_device, const std::string& origin,
                                       const DeviceProps& props, const CatalogEntry** out,
                                       std::string* matched_by) {
  *out = nullptr;
  if (!catalog_device.empty()) {
    *out = catalog.Find(catalog_device);
    if (*out == nullptr) {
      return Status::InvalidInput(origin + ": field 'catalog_device': unknown catalog device '" +
                                  catalog_device + "'; known: " + catalog.Ids());
    }
    *matched_by = "given: catalog_device " + catalog_device;
    return Status::Ok();
  }
  // A name that matches no pattern gets the kind's fallback; for CPUs the host's model string
  // is a better key than the backend's device name (e.g. the reference backend's).
  const CatalogEntry* by_name = catalog.Match(props.name, props.kind);
  if (by_name && !by_name->fallback) {
    *out = by_name;
    *matched_by = "auto: device name '" + props.name + "'";
    return Status::Ok();
  }
  if (props.kind == "cpu") {
    const std::string model = HostCpuModel();
    if (const CatalogEntry* e = catalog.Match(model, "cpu"); e != nullptr) {
      *out = e;
      *matched_by = e->fallback ? "fallback: no entry matches the CPU model '" + model + "'"
                                : "auto: host CPU model '" + model + "'";
      return Status::Ok();
    }
  }
  if (by_name) {
    *out = by_name;
    *matched_by = "fallback: no entry matches '" + props.name + "'";
  }
  return Status::Ok();
}

Status EnergyCostPlanner::Check(const WorkloadSpec& w, const DeviceProps& props) const {
  const CatalogEntry* e = nullptr;
  std::string by;
  return ResolveEntry(catalog_, w.cost.catalog_device, "workload " + w.model.name, props, &e, &by);
}

Status EnergyCostPlanner::MakeMeter(const WorkloadSpec& w, Device& device,
                                    std::unique_ptr<EnergyMeter>* owned, EnergyMeter** meter,
                                    std::string* note) const {
  owned->reset();
  *meter = nullptr;
  note->clear();
  if (energy_ == "off") return Status::Ok();
  if (energy_ == "auto" && device.energy() != nullptr) {
    *meter = device.energy();
    return Status::Ok();
  }
  const DeviceProps props = device.Props();
  const CatalogEntry* entry = nullptr;
  std::string by;
  CB_RETURN_IF_ERROR(ResolveEntry(catalog_, w.cost.catalog_device, "workload " + w.model.name,
                                  props, &entry, &by));
  CB_RETURN_IF_ERROR(energy::MakeEnergyMeter(energy_, props, entry, owned, note));
  *meter = owned->get();
  return Status::Ok();
}

Status EnergyCostPlanner::MakeEndpointMeter(const WorkloadSpec& w, const CatalogEntry* device_entry,
                                            int devices, std::unique_ptr<EnergyMeter>* owned,
                                            EnergyMeter** meter, std::string* note) const {
  CB_RETURN_IF_ERROR(energy::MakeRemoteEnergyMeter(energy_, w.endpoint.energy_metrics,
                                                   w.endpoint.energy_metric, device_entry, devices,
                                                   owned, note));
  *meter = owned->get();
  return Status::Ok();
}

void EnergyCostPlanner::Finish(const WorkloadSpec& w, RunRecord* rec) const {
  if (rec->status != "ok") return;
  AddEnergyMetrics(rec);
  const CatalogEntry* entry = nullptr;
  std::string by;
  if (!ResolveEntry(catalog_, w.cost.catalog_device, "workload", rec->device, &entry, &by).ok() ||
      entry == nullptr) {
    CostRecord c;
    c.basis = "none";
    c.cost_per_device_hour_usd = std::nan("");
    c.rental_usd_per_hour = c.capex_usd = c.amortization_years = c.all_in_power_w = c.pue =
        c.electricity_usd_per_kwh = std::nan("");
    c.notes.push_back("no catalog entry for " + rec->device.name +
                      ": give --catalog-device, or --price-per-hour");
    if (w.cost.price_per_hour) {
      CostBaseline b;
      b.rental_usd_per_hour = std::nan("");
      b.capex_usd = std::nan("");
      b.all_in_power_w = std::nan("");
      c = ResolveCost(b, w.cost, "command line or suite");
    }
    rec->cost = c;
  } else {
    rec->cost = ResolveCost(BaselineFromCatalog(*entry, by), w.cost, "command line or suite");
  }
  AddCostMetrics(rec);
}

}  // namespace cb
