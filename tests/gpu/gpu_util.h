#pragma once

// Shared by the gpu tests: skip without a GPU, open a cuda + reference session pair, choose the
// session's paths, set environment variables for a scope.

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_session.h"
#include "tests/conformance/conformance_util.h"

namespace cb::gpu_test {

/// Skips the test (reported SKIPPED) where no CUDA device is found.
#define CB_REQUIRE_GPU()                                             \
  do {                                                               \
    std::string cb_why_;                                             \
    if (!::cb::CudaBackendUsable(&cb_why_)) GTEST_SKIP() << cb_why_; \
  } while (0)

/// Sets (value not null) or unsets an environment variable for the scope and restores what was
/// there however the scope ends: a failed ASSERT returns early and must not leave it set.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

/// The paths of a CB_CUDA_DISABLE value ("" for all of them, "new" for the backend as it was
/// before the fast paths).
inline cuda::CudaPaths Paths(const std::string& disable) {
  cuda::CudaPaths p;
  const Status st = cuda::ParseDisabledPaths(disable.c_str(), &p);
  EXPECT_TRUE(st.ok()) << st.message();
  return p;
}

/// The cuda session under test and the reference on the same weights. The reference runs
/// fp32 for an fp16 session (it does not model fp16 rounding).
struct CudaPair {
  OpStream stream;
  std::unique_ptr<Device> cuda_device, ref_device;
  std::unique_ptr<Session> cuda, ref;
  cuda::CudaSession* session() const { return dynamic_cast<cuda::CudaSession*>(cuda.get()); }
};

/// Builds the stream, opens both sessions (the cuda one with `paths` when given, else the
/// environment's) and loads them.
inline void OpenCudaPair(const ModelSpec& spec, const SessionConfig& config, uint64_t seed,
                         CudaPair* p, const cuda::CudaPaths* paths = nullptr) {
  Status s =
      BuildDenseDecoderStream(spec, ShardSpec{}, static_cast<int>(spec.num_layers), &p->stream);
  ASSERT_TRUE(s.ok()) << s.message();
  s = OpenCudaDevice(-1, &p->cuda_device);
  ASSERT_TRUE(s.ok()) << s.message();
  p->ref_device = MakeReferenceDevice();
  ASSERT_TRUE(p->cuda_device->Supports(config.dtype).supported)
      << p->cuda_device->Supports(config.dtype).reason;
  s = p->cuda_device->Open(config, &p->cuda);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_NE(p->session(), nullptr);
  if (paths != nullptr) p->session()->SetPaths(*paths);
  SessionConfig ref_config = config;
  if (ref_config.dtype == DType::kF16) ref_config.dtype = DType::kF32;
  s = p->ref_device->Open(ref_config, &p->ref);
  ASSERT_TRUE(s.ok()) << s.message();
  const WeightSource weights(seed);
  s = p->cuda->Load(p->stream, weights);
  ASSERT_TRUE(s.ok()) << s.message();
  s = p->ref->Load(p->stream, weights);
  ASSERT_TRUE(s.ok()) << s.message();
}

}  // namespace cb::gpu_test
