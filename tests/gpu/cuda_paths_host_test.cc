// The CUDA backend's switches (backends/cuda/cuda_paths.h): parsing CB_CUDA_DISABLE.

#include <gtest/gtest.h>

#include "backends/cuda/cuda_paths.h"

namespace cb::cuda {
namespace {

TEST(CudaPaths, EverythingOnByDefault) {
  CudaPaths p;
  ASSERT_TRUE(ParseDisabledPaths(nullptr, &p).ok());
  for (int i = 0; i < kPathCount; ++i) EXPECT_TRUE(p(static_cast<Path>(i))) << i;
  ASSERT_TRUE(ParseDisabledPaths("", &p).ok());
  EXPECT_EQ(p.EnabledList(),
            "graphs,skinny,fuse_norm,fuse_swiglu,fuse_residual,fuse_rope,decode_attn,flash_attn,"
            "gemm_attn,narrow");
}

TEST(CudaPaths, NamesTurnPathsOff) {
  CudaPaths p;
  ASSERT_TRUE(ParseDisabledPaths("skinny, flash_attn,,graphs", &p).ok());
  EXPECT_FALSE(p(Path::kSkinnyGemm));
  EXPECT_FALSE(p(Path::kFlashAttn));
  EXPECT_FALSE(p(Path::kGraphs));
  EXPECT_TRUE(p(Path::kDecodeAttn));
  EXPECT_TRUE(p(Path::kNarrow));
  EXPECT_EQ(p.EnabledList(),
            "fuse_norm,fuse_swiglu,fuse_residual,fuse_rope,decode_attn,gemm_attn,narrow");
  // Parsing starts from everything on: nothing carries over from before.
  ASSERT_TRUE(ParseDisabledPaths("narrow", &p).ok());
  EXPECT_TRUE(p(Path::kSkinnyGemm));
  EXPECT_FALSE(p(Path::kNarrow));
}

TEST(CudaPaths, NewAndAllGroups) {
  CudaPaths p;
  ASSERT_TRUE(ParseDisabledPaths("new", &p).ok());
  EXPECT_EQ(p.EnabledList(), "graphs,gemm_attn");  // the backend before the GPU-window paths
  ASSERT_TRUE(ParseDisabledPaths("all", &p).ok());
  EXPECT_EQ(p.EnabledList(), "none");
}

TEST(CudaPaths, UnknownNameIsAnErrorListingTheNames) {
  CudaPaths p;
  const Status st = ParseDisabledPaths("skinny,flash", &p);
  ASSERT_EQ(st.code(), StatusCode::kInvalidInput);
  EXPECT_NE(st.message().find("'flash'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("flash_attn"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("CB_CUDA_DISABLE"), std::string::npos) << st.message();
}

TEST(CudaPaths, EveryPathHasAName) {
  for (int i = 0; i < kPathCount; ++i) {
    const std::string name = PathName(static_cast<Path>(i));
    EXPECT_NE(name, "?");
    CudaPaths p;
    ASSERT_TRUE(ParseDisabledPaths(name.c_str(), &p).ok()) << name;
    EXPECT_FALSE(p(static_cast<Path>(i))) << name;
  }
}

}  // namespace
}  // namespace cb::cuda
