#include "backends/cuda/cuda_paths.h"

#include <cstdlib>
#include <sstream>

namespace cb::cuda {
namespace {

constexpr const char* kNames[kPathCount] = {
    "graphs",    "skinny",      "fuse_norm",  "fuse_swiglu", "fuse_residual",
    "fuse_rope", "decode_attn", "flash_attn", "gemm_attn",   "narrow",
};

/// The paths that existed before the first GPU window; "new" disables all the others.
bool IsOriginal(Path p) { return p == Path::kGraphs || p == Path::kGemmAttn; }

}  // namespace

const char* PathName(Path p) {
  const int i = static_cast<int>(p);
  return i >= 0 && i < kPathCount ? kNames[i] : "?";
}

std::string CudaPaths::EnabledList() const {
  std::string s;
  for (int i = 0; i < kPathCount; ++i) {
    if (on[i]) s += (s.empty() ? "" : ",") + std::string(kNames[i]);
  }
  return s.empty() ? "none" : s;
}

Status ParseDisabledPaths(const char* value, CudaPaths* out) {
  *out = CudaPaths();
  if (value == nullptr) return Status::Ok();
  std::stringstream in(value);
  std::string item;
  while (std::getline(in, item, ',')) {
    const size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    if (item.empty()) continue;
    if (item == "all" || item == "new") {
      for (int i = 0; i < kPathCount; ++i) {
        if (item == "all" || !IsOriginal(static_cast<Path>(i))) out->on[i] = false;
      }
      continue;
    }
    bool known = false;
    for (int i = 0; i < kPathCount; ++i) {
      if (item == kNames[i]) {
        out->on[i] = false;
        known = true;
      }
    }
    if (!known) {
      std::string allowed = "all, new";
      for (const char* n : kNames) allowed += std::string(", ") + n;
      return Status::InvalidInput("CB_CUDA_DISABLE: unknown path '" + item +
                                  "' (allowed: " + allowed + ")");
    }
  }
  return Status::Ok();
}

Status PathsFromEnvironment(CudaPaths* out) {
  return ParseDisabledPaths(std::getenv("CB_CUDA_DISABLE"), out);
}

}  // namespace cb::cuda
