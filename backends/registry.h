#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace cb {

struct BackendInfo {
  std::string name;  ///< as given to --backend
  std::string description;
  bool available = false;  ///< built in and usable on this machine
  std::string unavailable_reason;
};

/// Every backend clusterbench knows, available or not.
std::vector<BackendInfo> ListBackends();

/// Opens the device of `backend` (kInvalidInput for an unknown name, naming the allowed ones;
/// kUnsupported when it is known but not available here).
Status OpenDevice(const std::string& backend, std::unique_ptr<Device>* out);

}  // namespace cb
