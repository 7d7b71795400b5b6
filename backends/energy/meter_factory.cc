#include "backends/energy/meter_factory.h"

#include <cstdlib>

#include "backends/energy/nvml_meter.h"
#include "backends/energy/power_model_meter.h"
#include "backends/energy/rapl_meter.h"

namespace cb::energy {

bool IsEnergyChoice(const std::string& choice) {
  for (const char* c : kEnergyChoices) {
    if (choice == c) return true;
  }
  return false;
}

Status MakeEnergyMeter(const std::string& choice, const DeviceProps& props,
                       const CatalogEntry* entry, std::unique_ptr<EnergyMeter>* out,
                       std::string* note) {
  out->reset();
  note->clear();
  if (!IsEnergyChoice(choice)) {
    return Status::InvalidInput("unknown energy source '" + choice +
                                "'; allowed values: auto, rapl, nvml, model, off");
  }
  if (choice == "off") return Status::Ok();
  auto rapl = [] {
    RaplOptions o;
    if (const char* root = std::getenv("CLUSTERBENCH_POWERCAP_ROOT"); root && *root) o.root = root;
    return std::make_unique<RaplMeter>(o);
  };
  std::unique_ptr<EnergyMeter> model;
  if (entry != nullptr && entry->type == "device" && entry->tdp_w.known() &&
      entry->idle_w.known()) {
    PowerModelOptions o;
    o.idle_w = entry->idle_w.value;
    o.tdp_w = entry->tdp_w.value;
    o.entry = entry->id;
    if (props.kind != "cpu") o.utilisation = 1.0;  // busy through the measured window: assumed
    model = std::make_unique<PowerModelMeter>(o);
  }
  if (choice == "rapl") {
    *out = rapl();
  } else if (choice == "nvml") {
    *out = std::make_unique<NvmlMeter>();
  } else if (choice == "model") {
    if (!model) {
      return Status::InvalidInput(
          "--energy model needs a catalog entry with tdp_w and idle_w for " + props.name +
          "; choose one with --catalog-device");
    }
    *out = std::move(model);
  } else if (props.kind == "cpu") {
    *out = std::make_unique<FallbackMeter>(rapl(), std::move(model));
  } else if (props.kind == "gpu") {
    *out = std::make_unique<FallbackMeter>(std::make_unique<NvmlMeter>(), std::move(model));
  } else if (model) {
    *out = std::move(model);
  } else {
    *note = "no energy counter or catalog entry for " + props.name + ": energy not reported";
  }
  return Status::Ok();
}

}  // namespace cb::energy
