#pragma once

#include <string>
#include <vector>

#include "backends/devices/catalog.h"
#include "harness/core/status.h"

namespace cb::sim {

/// One kind of link in the alpha-beta model: a message of n bytes takes alpha + n / beta.
struct Link {
  double alpha_s = 0;       ///< per-message latency
  double beta_bytes_s = 0;  ///< one-way bandwidth per device
  std::string source;
};

/// Achieved rates of an expert-parallel all-to-all kind: within the scale-up domain, across
/// it, and its fixed latency per call.
struct AllToAllRates {
  double scale_up_bytes_s = 0, scale_out_bytes_s = 0, latency_s = 0;
  /// The share of the device's compute the kernels take while they run: throughput kernels a
  /// share of the SMs for their whole time (compute beside them runs on the rest), low-latency
  /// kernels every SM for this share of their time (serialised with compute; none in flight).
  double compute_share = 0;
  std::string source;
};

/// How a set of devices is connected: scale-up domains (NVLink, HCCS, UB) of `domain`
/// devices and a scale-out network between them, with the all-to-all rates kernels reach.
struct Topology {
  std::string name;    ///< system id, or "<device> x N"
  std::string device;  ///< catalog device id
  int devices = 1;
  int domain = 1;  ///< devices per scale-up domain
  Link scale_up, scale_out;
  AllToAllRates a2a_throughput;   ///< prefill-style (DeepEP normal) kernels
  AllToAllRates a2a_low_latency;  ///< decode-style kernels
};

/// The topology of catalog system `system` (e.g. huawei-cloudmatrix-384) or, for a device
/// entry, of `devices` such devices in servers of its usual scale-up domain (the entry's
/// `interconnect`; CPUs and devices without one: an assumed 100 GbE network, labelled so).
Status TopologyFor(const CatalogEntry& entry, int devices, Topology* out);

enum class Collective { kAllReduce, kAllGather, kAllToAll };

/// Algorithm and seconds of one collective over a group of `group` consecutive devices:
/// ring allreduce 2(p-1) alpha + 2 (p-1)/p n / beta; ring allgather (p-1) alpha + (p-1)/p n / beta
/// (n: bytes of the gathered result); pairwise alltoall (p-1) alpha + (p-1)/p n / beta. A group
/// that fits in one scale-up domain uses its link; a larger one is limited by scale-out.
double CollectiveSeconds(const Topology& t, Collective c, int group, double bytes);
std::string CollectiveAlgorithm(Collective c);

/// Seconds of a point-to-point transfer of `bytes` between two devices `same_domain` or not.
double TransferSeconds(const Topology& t, bool same_domain, double bytes);

}  // namespace cb::sim
