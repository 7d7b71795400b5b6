#pragma once

// Shared by the gpu tests: skip without a GPU, open a cuda + reference session pair.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "backends/cuda/cuda_backend.h"
#include "tests/conformance/conformance_util.h"

namespace cb::gpu_test {

/// Skips the test (reported SKIPPED) where no CUDA device is found.
#define CB_REQUIRE_GPU()                                             \
  do {                                                               \
    std::string cb_why_;                                             \
    if (!::cb::CudaBackendUsable(&cb_why_)) GTEST_SKIP() << cb_why_; \
  } while (0)

/// The cuda session under test and the reference on the same weights. The reference runs
/// fp32 for an fp16 session (it does not model fp16 rounding).
struct CudaPair {
  OpStream stream;
  std::unique_ptr<Device> cuda_device, ref_device;
  std::unique_ptr<Session> cuda, ref;
};

inline void OpenCudaPair(const ModelSpec& spec, const SessionConfig& config, uint64_t seed,
                         CudaPair* p) {
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
