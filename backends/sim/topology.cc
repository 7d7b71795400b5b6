#include "backends/sim/topology.h"

#include <algorithm>

namespace cb::sim {
namespace {

constexpr double kGB = 1e9;

struct LinkRow {
  const char* id;
  int domain;
  double up_gb_s, up_alpha_s;
  const char* source;
};

/// Scale-up links per catalog id (one-way bandwidth per device). Figures from
/// shared/facts/hardware.md; NVLink figures are the bidirectional datasheet numbers halved.
/// Latencies are assumed (typical small-message collective latency per hop).
const LinkRow kLinks[] = {
    {"huawei-cloudmatrix-384", 384, 392, 3e-6,
     "UB 392 GB/s one-way per NPU, all-to-all over 384 NPUs (SemiAnalysis; arXiv 2506.12708); "
     "alpha 3 us assumed"},
    {"nvidia-gb200-nvl72", 72, 900, 2e-6,
     "NVLink5 1.8 TB/s bidirectional = 900 GB/s one-way, 72 GPUs (NVIDIA); alpha 2 us assumed"},
    {"nvidia-hgx-h100-8", 8, 450, 2e-6,
     "NVLink4 900 GB/s bidirectional = 450 GB/s one-way, 8 GPUs (NVIDIA); alpha 2 us assumed"},
    {"huawei-ascend-910b", 8, 196, 3e-6,
     "HCCS 196 GB/s one-way per device, 8 per server (Ascend/msmodeling); alpha 3 us assumed"},
    {"huawei-ascend-910c", 8, 392, 3e-6,
     "UB 392 GB/s one-way per NPU, 8 per server assumed outside a CloudMatrix; alpha 3 us "
     "assumed"},
    {"nvidia-a100-sxm-80gb", 8, 300, 2e-6,
     "NVLink3 600 GB/s bidirectional, 8 per HGX; alpha 2 us assumed"},
    {"nvidia-h100-sxm", 8, 450, 2e-6,
     "NVLink4 900 GB/s bidirectional, 8 per HGX; alpha 2 us assumed"},
    {"nvidia-h200-sxm", 8, 450, 2e-6,
     "NVLink4 900 GB/s bidirectional, 8 per HGX; alpha 2 us assumed"},
    {"nvidia-h20", 8, 450, 2e-6, "NVLink 900 GB/s bidirectional, 8 per server; alpha 2 us assumed"},
    {"nvidia-b200", 8, 900, 2e-6, "NVLink5 1.8 TB/s bidirectional, 8 per HGX; alpha 2 us assumed"},
    {"nvidia-gb200", 72, 900, 2e-6,
     "NVLink5 1.8 TB/s bidirectional, 72 per NVL72; alpha 2 us assumed"},
};

const Link kScaleOut{10e-6, 50 * kGB,
                     "assumed: one 400 Gb/s NIC per device (InfiniBand/RoCE), alpha 10 us"};
const Link kCpuNetwork{20e-6, 12.5 * kGB, "assumed: 100 GbE between CPU servers, alpha 20 us"};

}  // namespace

Status TopologyFor(const CatalogEntry& entry, int devices, Topology* out) {
  Topology t;
  t.name = entry.id;
  t.device = entry.type == "system" ? entry.device : entry.id;
  t.devices = entry.type == "system" ? static_cast<int>(entry.device_count) : devices;
  if (entry.type != "system") t.name = entry.id + " x " + std::to_string(devices);
  t.scale_out = entry.kind == "cpu" ? kCpuNetwork : kScaleOut;
  t.scale_up = t.scale_out;
  t.domain = 1;
  for (const LinkRow& r : kLinks) {
    if (entry.id == r.id || (entry.type != "system" && t.device == r.id)) {
      t.domain = r.domain;
      t.scale_up = Link{r.up_alpha_s, r.up_gb_s * kGB, r.source};
      break;
    }
  }
  if (entry.type == "system" && t.domain == 1) {
    return Status::InvalidInput("system '" + entry.id +
                                "' has no interconnect figures in backends/sim/topology.cc");
  }
  *out = t;
  return Status::Ok();
}

std::string CollectiveAlgorithm(Collective c) {
  switch (c) {
    case Collective::kAllReduce:
      return "ring allreduce";
    case Collective::kAllGather:
      return "ring allgather";
    case Collective::kAllToAll:
      return "pairwise alltoall";
  }
  return "";
}

double CollectiveSeconds(const Topology& t, Collective c, int group, double bytes) {
  if (group <= 1) return 0;
  const Link& l = group <= t.domain ? t.scale_up : t.scale_out;
  const double p = group;
  const double share = (p - 1) / p * bytes / l.beta_bytes_s;
  switch (c) {
    case Collective::kAllReduce:
      return 2 * (p - 1) * l.alpha_s + 2 * share;
    case Collective::kAllGather:
    case Collective::kAllToAll:
      return (p - 1) * l.alpha_s + share;
  }
  return 0;
}

}  // namespace cb::sim
