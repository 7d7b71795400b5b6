#pragma once

#include <functional>
#include <string>

#include "harness/core/status.h"
#include "harness/micro/host_info.h"
#include "results/run_record.h"

namespace cb {

/// Measures ceilings; MeasureCeilings in production, a fake in tests.
using CeilingsMeasureFn = std::function<Status(Ceilings*)>;

/// `<results_dir>/ceilings/<key>.json`, the key made safe for a file name.
std::string CeilingsCachePath(const std::string& results_dir, const std::string& key);

/// The cache key of a host: its name and thread count ("node1-2t"), so a rank of an MPI job
/// (one thread each) and a whole-machine process keep separate ceilings.
std::string CeilingsCacheKey(const HostInfo& host);

/// The cache file's JSON: host, cpu_model, isa, threads, measured_at, tool_version,
/// matmul_flops_per_s {dtype name: FLOP/s}, mem_read_bytes_per_s.
std::string CeilingsCacheJson(const Ceilings& c, const HostInfo& host);

/// Parses a cache file. Fails (with a reason) on malformed JSON, missing or mistyped fields,
/// or figures that are not positive and finite.
Status ParseCeilingsCache(const std::string& text, Ceilings* c, HostInfo* host);

/// LoadOrMeasureCeilings with the host identity and the measurement injected. Uses the cache
/// when it exists, parses, and was measured on the same host, CPU model, oneDNN ISA and
/// thread count, unless `remeasure`; otherwise measures and rewrites it atomically. A
/// corrupt or mismatching cache is reported on stderr. A cache that cannot be written is a
/// warning: the measured ceilings are still returned.
Status LoadOrMeasureCeilingsWith(const std::string& results_dir, bool remeasure,
                                 const HostInfo& host, const CeilingsMeasureFn& measure,
                                 Ceilings* out);

}  // namespace cb
