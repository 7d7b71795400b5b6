#pragma once

#include <memory>
#include <string>

#include "backends/backend.h"
#include "harness/micro/ceiling_probe.h"

namespace cb {

/// Test-only faults, selected with the hidden `run --inject-fault MODE` flag, so the tests can
/// prove that the harness catches what a broken backend would do:
///   "nan-logits"  every step's logits (when asked for) get a NaN, every sample becomes -1;
///   "skew-logits" logits asked for are scaled by 1.5 (a wrong kernel without NaN);
///   "throw-on-rank:R" world rank R throws from its first decode step (a crashing rank);
///   "ceiling-drift", "ceiling-low", "ceiling-steady": fakes of the ceiling probe
///   (MakeFaultyCeilingProbe); the device is returned unchanged.
/// Returns kInvalidInput naming the allowed modes for anything else. `world_rank` is this
/// process's rank; other ranks get their device back unchanged for rank-specific faults.
Status WrapWithFault(const std::string& mode, int world_rank, std::unique_ptr<Device> inner,
                     std::unique_ptr<Device>* out);

/// A fake ceiling probe for the modes that fault the probe, so the tests can prove that a
/// probe disagreeing with the window makes the run unstable:
///   "ceiling-drift" samples alternate 40 GB/s and 400 GFLOP/s (before the window) with half
///                   of that (after it): 50% apart;
///   "ceiling-low"   every sample reads 1 MB/s and 1 MFLOP/s, far below what any window
///                   achieves, so every MFU and MBU exceeds 1;
///   "ceiling-steady" every sample reads 1e18 (bytes/s, FLOP/s), far above any window: the
///                   run is judged valid whatever the host does, for tests about publishing
///                   and comparing that must not depend on this shared host's noise.
/// All report no last-level cache, so every phase gets an MBU. nullptr for other modes.
std::unique_ptr<CeilingProbe> MakeFaultyCeilingProbe(const std::string& mode);

}  // namespace cb
