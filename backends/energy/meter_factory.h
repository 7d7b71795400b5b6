#pragma once

#include <memory>
#include <string>

#include "backends/backend.h"
#include "backends/devices/catalog.h"

namespace cb::energy {

/// Allowed values of `--energy`: auto (the device's counter, else the power model), rapl,
/// nvml, model, off.
inline constexpr const char* kEnergyChoices[] = {"auto", "rapl", "nvml", "model", "off"};
bool IsEnergyChoice(const std::string& choice);

/// The meter for a device the backend gives none for: RAPL for CPUs and NVML for GPUs, each
/// falling back to the catalog's power model (`entry`), under `choice`. `*out` stays null for
/// "off" and where nothing can be read or modelled (`*note` then says why).
/// $CLUSTERBENCH_POWERCAP_ROOT replaces /sys/class/powercap (tests use a fake tree).
Status MakeEnergyMeter(const std::string& choice, const DeviceProps& props,
                       const CatalogEntry* entry, std::unique_ptr<EnergyMeter>* out,
                       std::string* note);

}  // namespace cb::energy
