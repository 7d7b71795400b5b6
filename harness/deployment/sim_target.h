#pragma once

#include <string>

#include "backends/devices/catalog.h"
#include "backends/sim/perf_model.h"
#include "backends/sim/topology.h"
#include "workloads/deployment.h"
#include "workloads/workload_spec.h"

namespace cb {

/// A simulated workload resolved against the device catalog: the device's performance
/// model, the links between its devices, the deployment, and the per-rank memory check.
struct SimTarget {
  std::string system_id;  ///< catalog system, empty when the workload names devices
  std::string device_id;
  std::string cost_entry;  ///< catalog entry that prices it (the system's if priced)
  sim::DeviceModel model;
  sim::Topology topology;
  Deployment deployment;
  int64_t prefill_chunk = 0;  ///< prompt tokens per rank per prefill step
  std::vector<std::string> notes;

  const PoolLayout& Prefill() const { return deployment.Prefill(); }
  const PoolLayout& Decode() const { return deployment.Decode(); }
};

/// Prompt tokens a rank prefills per step when the workload gives no max_prefill_tokens:
/// SGLang's default chunked-prefill size for large accelerators, 16,384; 512 on CPUs.
int64_t DefaultPrefillChunk(const sim::DeviceModel& m);

/// The device half of ResolveSimTarget: system, device, model, dtype support, links, prefill
/// chunk and the entry that prices it; the deployment is left empty.
Status ResolveSimDevice(const WorkloadSpec& w, const DeviceCatalog& catalog,
                        const std::string& where, SimTarget* out);

/// Resolves a workload of the sim backend: the catalog device (`sim:ID`, the system's
/// device), the devices (`devices`, else the system's count, else 1), the pools
/// (`disaggregate`, else one pool of `tp` x `dp` with `ep`), and checks everything before
/// any run: layouts against the model, the dtype against the device (fp8 needs native fp8),
/// MTP against the model, and per-rank memory (weights of its shard, its own sequences' KV
/// cache, one chunk's activations). A tp left at 0 becomes the smallest power of two that
/// fits in memory (within a scale-up domain). Errors name `where`, the field and the allowed
/// values (kInvalidInput, or kResourceExhausted for memory: exit code 2).
Status ResolveSimTarget(const WorkloadSpec& w, const DeviceCatalog& catalog,
                        const std::string& where, SimTarget* out);

/// Checks that each pool of `t` holds its share of `w`'s sequences (the per-rank memory of
/// RankMemoryOf against the device's memory); the message states per-device figures, after
/// "WHERE: field 'batch': " unless `where` is empty (a layout search, not the user's batch).
Status CheckSimMemory(const WorkloadSpec& w, const SimTarget& t, const std::string& where);

/// What one rank of `pool` holds: sequences, their context, and the tokens of its largest
/// step. A prefill pool keeps only the prompts it is prefilling (their KV caches leave for
/// the decode pool); every other pool keeps its share of the batch for the whole generation.
struct SimRankLoad {
  int64_t seqs = 0, context = 0, step_tokens = 0;
};
SimRankLoad SimRankLoadOf(const WorkloadSpec& w, const SimTarget& t, const PoolLayout& pool);
/// Its memory: RankMemoryOf, plus the MTP module's weights when the deployment predicts.
RankMemory SimRankMemory(const WorkloadSpec& w, const SimTarget& t, const PoolLayout& pool,
                         const SimRankLoad& load);

/// Sequences each attention group of `pool` holds at most when `batch` are spread over it.
int64_t SeqsPerRank(int64_t batch, const PoolLayout& pool);

/// True for "sim" and "sim:DEVICE".
bool IsSimBackend(const std::string& backend);

}  // namespace cb
