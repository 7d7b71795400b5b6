#pragma once

// Helpers of the simulator's unit tests.

#include <gtest/gtest.h>

#include "backends/devices/catalog.h"
#include "harness/runner.h"

namespace cb::testing {

/// The repository's device catalog, loaded once.
inline const DeviceCatalog& Catalog() {
  static DeviceCatalog c = [] {
    DeviceCatalog cat;
    EXPECT_TRUE(DeviceCatalog::Load(DefaultCatalogDir(), &cat).ok());
    return cat;
  }();
  return c;
}

/// RunOffline of `w` on `device` as a single rank, quiet, judged against the device's own
/// peaks (as a modelled device is); the status is checked, the record returned.
inline RunRecord RunOfflineAlone(const WorkloadSpec& w, Device& device) {
  SingleRankCommunicator one;
  ParallelContext single;
  single.world = single.tp_group = single.ep_group = &one;
  RunnerOptions opts;
  opts.quiet = true;
  opts.parallel = &single;
  const DeviceProps p = device.Props();
  for (int d = 0; d < kDTypeCount; ++d) opts.ceilings.matmul_flops_per_s[d] = p.peak_flops[d];
  opts.ceilings.mem_read_bytes_per_s = p.mem_bandwidth_bytes_per_s;
  RunRecord rec;
  const Status s = RunOffline(w, device, opts, &rec);
  EXPECT_TRUE(s.ok()) << s.message();
  return rec;
}

}  // namespace cb::testing
