#include "backends/sim/topology.h"

#include <algorithm>

namespace cb::sim {
namespace {

constexpr double kGB = 1e9;

const Link kCpuNetwork{20e-6, 12.5 * kGB, "assumed: 100 GbE between CPU servers, alpha 20 us"};

Link LinkOf(const CatalogFigure& bw, const CatalogFigure& lat) {
  return Link{lat.value, bw.value, bw.source + "; latency " + lat.source};
}

AllToAllRates RatesOf(const AllToAllFigures& f) {
  return AllToAllRates{f.scale_up_bytes_per_s.value, f.scale_out_bytes_per_s.value,
                       f.latency_s.value, f.compute_share.value,
                       "scale-up " + f.scale_up_bytes_per_s.source + "; scale-out " +
                           f.scale_out_bytes_per_s.source + "; latency " + f.latency_s.source +
                           "; compute share " + f.compute_share.source};
}

}  // namespace

Status TopologyFor(const CatalogEntry& entry, int devices, Topology* out) {
  Topology t;
  const bool system = entry.type == "system";
  t.name = system ? entry.id : entry.id + " x " + std::to_string(devices);
  t.device = system ? entry.device : entry.id;
  t.devices = system ? static_cast<int>(entry.device_count) : devices;
  const Interconnect& ic = entry.interconnect;
  if (!ic.present) {
    if (system) {
      return Status::InvalidInput(entry.file + ": field 'interconnect': a system needs one");
    }
    // CPU servers and devices without figures: one server per device on an assumed network.
    t.domain = 1;
    t.scale_up = t.scale_out = kCpuNetwork;
    t.a2a_throughput = t.a2a_low_latency =
        AllToAllRates{kCpuNetwork.beta_bytes_s, kCpuNetwork.beta_bytes_s, kCpuNetwork.alpha_s, 0,
                      "assumed: the network's line rate (" + kCpuNetwork.source + ")"};
    *out = t;
    return Status::Ok();
  }
  t.domain = static_cast<int>(ic.domain_devices.value);
  t.scale_up = LinkOf(ic.scale_up_bytes_per_s, ic.scale_up_latency_s);
  t.scale_out = LinkOf(ic.scale_out_bytes_per_s, ic.scale_out_latency_s);
  t.a2a_throughput = RatesOf(ic.throughput);
  t.a2a_low_latency = RatesOf(ic.low_latency);
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

double TransferSeconds(const Topology& t, bool same_domain, double bytes) {
  const Link& l = same_domain ? t.scale_up : t.scale_out;
  return l.alpha_s + bytes / l.beta_bytes_s;
}

}  // namespace cb::sim
