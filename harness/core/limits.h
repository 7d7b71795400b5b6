#pragma once

#include <cstdint>

namespace cb::limits {

// Upper bounds of every shape, count and size a user can give (docs/workloads.md, "Limits").
// They are far above any real model or deployment and keep every product of sizes the code
// forms (parameters, bytes, buffer elements) inside int64 and double without loss; a value
// above its bound is bad input (exit 2) naming the field, the value and the bound.

inline constexpr int64_t kMaxHidden = int64_t{1} << 17;
inline constexpr int64_t kMaxLayers = 4096;
inline constexpr int64_t kMaxHeads = 4096;
inline constexpr int64_t kMaxHeadDim = 4096;
inline constexpr int64_t kMaxFfn = int64_t{1} << 21;
inline constexpr int64_t kMaxVocab = int64_t{1} << 23;
inline constexpr int64_t kMaxContext = int64_t{1} << 24;
inline constexpr int64_t kMaxExperts = int64_t{1} << 14;
inline constexpr int64_t kMaxLoraRank = int64_t{1} << 17;
/// Parameters of a model (all layers): 10^16, 5,000x the largest published model.
inline constexpr double kMaxParams = 1e16;

inline constexpr int64_t kMaxBatch = int64_t{1} << 24;
inline constexpr int64_t kMaxRepetitions = 100000;
inline constexpr int64_t kMaxWarmup = 10000;
inline constexpr int64_t kMaxSeed = int64_t{1} << 53;
/// Workloads one suite or command line may expand to (the product of its lists).
inline constexpr int64_t kMaxWorkloads = 100000;
inline constexpr int64_t kMaxRequests = 10000000;
/// Simulated devices of a deployment.
inline constexpr int64_t kMaxDevices = int64_t{1} << 16;
/// Model names and other identifiers that end up in file names.
inline constexpr int64_t kMaxNameLength = 128;
/// Model, suite, catalog and result files.
inline constexpr int64_t kMaxInputFileBytes = int64_t{64} << 20;

}  // namespace cb::limits
