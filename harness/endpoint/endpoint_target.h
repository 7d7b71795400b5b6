#pragma once

#include <map>
#include <memory>
#include <string>

#include "backends/backend.h"
#include "backends/devices/catalog.h"
#include "backends/endpoint/endpoint_url.h"
#include "backends/endpoint/openai_protocol.h"
#include "harness/endpoint/dataset.h"
#include "workloads/workload_spec.h"

namespace cb {

/// An endpoint workload resolved before anything runs: the URL, the API, the key read from
/// its environment variable, the dataset read and checked, and the hardware the user declared
/// (a catalog device or system and a device count) that prices the run and models its power.
struct EndpointTarget {
  EndpointUrl url;
  ApiKind api = ApiKind::kCompletions;
  std::string api_key;                         ///< never written anywhere
  std::shared_ptr<const Dataset> dataset;      ///< null: synthetic prompts
  const CatalogEntry* hardware = nullptr;      ///< the declared device or system; null: undeclared
  const CatalogEntry* device_entry = nullptr;  ///< the device (a system's own device entry)
  std::string cost_entry;  ///< the catalog entry that prices it ("" when undeclared)
  int devices = 1;         ///< declared devices behind the URL
  DeviceProps props;       ///< what the record's device section says
};

/// Resolves an endpoint workload (docs/endpoint.md): `where` and the field name every error
/// (kInvalidInput: exit 2). Datasets are read once per path through `datasets`.
Status ResolveEndpointTarget(const WorkloadSpec& w, const DeviceCatalog& catalog,
                             const std::string& where,
                             std::map<std::string, std::shared_ptr<const Dataset>>* datasets,
                             EndpointTarget* out);

}  // namespace cb
