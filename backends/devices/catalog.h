#pragma once

#include <map>
#include <string>
#include <vector>

#include "harness/core/status.h"

namespace cb {

/// One figure of the catalog with where it comes from. `value` is NaN where unknown; the
/// source then says why (e.g. "not published").
struct CatalogFigure {
  double value = 0;
  std::string source;
  bool known() const;
};

/// Achieved rates of one kind of expert-parallel all-to-all (dispatch and combine) per device,
/// within the scale-up domain and across it, and its fixed latency per call.
struct AllToAllFigures {
  CatalogFigure scale_up_bytes_per_s, scale_out_bytes_per_s, latency_s;
  /// Share of the device's compute the all-to-all kernels occupy while they run (SMs given
  /// to communication), which overlapped compute does without.
  CatalogFigure compute_share;
  bool known() const;
};

/// How devices are connected: a scale-up domain (NVLink, HCCS, UB) of `domain_devices`
/// devices, a scale-out network between domains (one-way bandwidth per device, per-message
/// latency), and the all-to-all rates kernels reach on them: `throughput` kernels for long
/// batches (prefill, DeepEP's normal mode) and `low_latency` kernels for decode.
struct Interconnect {
  bool present = false;
  CatalogFigure domain_devices;
  CatalogFigure scale_up_bytes_per_s, scale_up_latency_s;
  CatalogFigure scale_out_bytes_per_s, scale_out_latency_s;
  AllToAllFigures throughput, low_latency;
};

/// A device (one GPU, NPU, CPU server or VM) or a system of devices (CloudMatrix 384, NVL72)
/// from backends/devices/*.json. docs/devices.md describes the fields.
struct CatalogEntry {
  std::string id;    ///< the file's stem, e.g. "nvidia-h100-sxm"
  std::string type;  ///< "device" or "system"
  std::string name;
  std::string kind;  ///< "cpu", "gpu", "npu"
  std::string vendor;
  std::string notes;
  std::string file;                ///< where it was loaded from
  std::vector<std::string> match;  ///< regexes (case-insensitive) on the device's model string
  bool fallback = false;           ///< used for a device of this kind that nothing matches
  std::map<std::string, CatalogFigure> peak_flops;  ///< dtype -> FLOP/s (dense)
  CatalogFigure mem_bandwidth_bytes_per_s, mem_bytes;
  CatalogFigure tdp_w, idle_w;   ///< devices: the chip (or CPU sockets) alone
  CatalogFigure all_in_power_w;  ///< incl. the share of host, network and cooling
  CatalogFigure purchase_usd, rental_usd_per_hour;
  std::string device;        ///< systems: id of the device entry they are made of
  int64_t device_count = 1;  ///< systems: devices in the system
  /// Devices: their usual servers' links; systems: the system's. Optional for devices.
  Interconnect interconnect;
};

class DeviceCatalog {
 public:
  /// Loads every *.json in `dir`. Errors (kInvalidInput) name the file and the field.
  static Status Load(const std::string& dir, DeviceCatalog* out);
  /// Parses one entry; `origin` names it in errors and becomes `file`.
  static Status ParseEntry(const std::string& text, const std::string& origin, CatalogEntry* out);

  const std::vector<CatalogEntry>& entries() const { return entries_; }
  /// The entry whose id (or name, case-insensitively) is `name`; nullptr if none.
  const CatalogEntry* Find(const std::string& name) const;
  /// The device entry whose `match` pattern matches the longest part of `model`, among entries
  /// of `kind` (any kind when empty); else the fallback entry of that kind; else nullptr.
  const CatalogEntry* Match(const std::string& model, const std::string& kind) const;
  /// Comma-separated ids, for error messages.
  std::string Ids() const;

 private:
  std::vector<CatalogEntry> entries_;
};

/// DataDir()/backends/devices.
std::string DefaultCatalogDir();

}  // namespace cb
