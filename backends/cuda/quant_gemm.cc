// The int8 / fp8 GEMMs on cuBLASLt (quant_gemm.h): the cuBLASLt calls and their algorithm
// cache, the quantise -> GEMM -> epilogue sequence. The weight packer is in quant_weights.cc.

#include "backends/cuda/quant_gemm.h"

#include <algorithm>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_plan.h"
#include "backends/cuda/quant_kernels.h"

// The 1 x 128 / 128 x 128 scale modes came with cuBLAS 12.9 (CUBLAS_VERSION 120900).
#if defined(CUBLAS_VERSION) && CUBLAS_VERSION >= 120900
#define CB_HAVE_FP8_BLOCK_SCALING 1
#else
#define CB_HAVE_FP8_BLOCK_SCALING 0
#endif

namespace cb::cuda {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// The largest power of two (up to 256) that divides the address: cuBLASLt's heuristics
/// assume 256-byte alignment unless told otherwise, and an fp8 K-slice starts 128 bytes in.
uint32_t AlignmentOf(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

template <typename T>
cublasStatus_t SetDesc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const T& v) {
  return cublasLtMatmulDescSetAttribute(d, attr, &v, sizeof v);
}
template <typename T>
cublasStatus_t SetPref(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr,
                       const T& v) {
  return cublasLtMatmulPreferenceSetAttribute(p, attr, &v, sizeof v);
}

/// The descriptors of one cublasLtMatmul, destroyed with it.
struct LtDescs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtDescs() {
    if (pref != nullptr) cublasLtMatmulPreferenceDestroy(pref);
    if (d != nullptr) cublasLtMatrixLayoutDestroy(d);
    if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
    if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
    if (op != nullptr) cublasLtMatmulDescDestroy(op);
  }
};

Status WithContext(const Status& s, const std::string& what) {
  return s.ok() ? s : Status(s.code(), what + ": " + s.message());
}

}  // namespace

const char* Fp8PathName(Fp8Path p) {
  switch (p) {
    case Fp8Path::kBlockScaled:
      return "block_scaled";
    case Fp8Path::kSliced:
      return "k_sliced";
    case Fp8Path::kAuto:
      break;
  }
  return "auto";
}

bool QuantGemmSupported(DType dtype, int major, int minor, std::string* why) {
  const std::string sm = "sm_" + std::to_string(major) + std::to_string(minor);
  if (dtype == DType::kInt8) {
    if (major >= 8) return true;
    if (why) *why = "the int8 GEMM (cuBLASLt IMMA) is built for sm_80+, not " + sm;
    return false;
  }
  if (dtype == DType::kFP8) {
    if (major * 10 + minor >= 89) return true;
    if (why) *why = "fp8 (e4m3) tensor cores need sm_89 or later, not " + sm;
    return false;
  }
  if (why) *why = std::string(DTypeName(dtype)) + " is not a quantised dtype";
  return false;
}

bool Fp8BlockScalingAvailable(int major, int minor) {
  return CB_HAVE_FP8_BLOCK_SCALING && major == 9 && minor == 0 && cublasLtGetVersion() >= 120900;
}

/// One cublasLtMatmul in cuBLAS's column-major terms: D (m x n, ld ldd) = op_T(A) op_N(B),
/// A stored k x m (ld lda: W's rows), B stored k x n (ld ldb: the tokens' rows).
struct QuantGemm::LtCall {
  const char* what = "";
  cudaDataType_t ab_type = CUDA_R_8I, d_type = CUDA_R_32I;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32I;
  cudaDataType_t scale_type = CUDA_R_32I;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;
  int64_t ldb = 0;
  void* d = nullptr;
  int64_t ldd = 0;
  bool block_scaled = false;  ///< A: BLK128x128_32F at a_scale, B: VEC128_32F at b_scale
  const float* a_scale = nullptr;
  const float* b_scale = nullptr;
  void Fp8();  ///< e4m3 inputs, fp32 output and compute
};

/// W [n_pad, k_pad] (transposed) x the staged activations [rows_pad, k_pad] into the scratch
/// product [rows_pad, n_pad]: int8 by default, `Fp8` for e4m3 with fp32 output.
QuantGemm::LtCall QuantGemm::WeightsByActivations(const QuantWeights& w, int64_t rows_pad,
                                                  const char* what) const {
  LtCall c;
  c.what = what;
  c.m = w.n_pad;
  c.n = rows_pad;
  c.k = w.k_pad;
  c.a = w.codes;
  c.lda = w.k_pad;
  c.b = act_;
  c.ldb = w.k_pad;
  c.d = product_;
  c.ldd = w.n_pad;
  return c;
}

void QuantGemm::LtCall::Fp8() {
  ab_type = CUDA_R_8F_E4M3;
  d_type = CUDA_R_32F;
  compute = CUBLAS_COMPUTE_32F;
  scale_type = CUDA_R_32F;
}

/// The epilogue from the scratch product into the caller's y (scales left to the caller).
EpilogueArgs QuantGemm::EpilogueInto(const QuantGemmArgs& a) const {
  EpilogueArgs e;
  e.acc = product_;
  e.acc_ld = a.w->n_pad;
  e.y = a.y;
  e.y_ld = a.y_ld;
  e.rows = a.rows;
  e.n = a.w->n;
  e.accumulate = a.accumulate;
  return e;
}

QuantGemm::~QuantGemm() {
  Free();
  if (lt_ != nullptr) cublasLtDestroy(lt_);
}

void QuantGemm::Free() {
  for (void* p : allocs_) cudaFree(p);
  allocs_.clear();
  act_ = nullptr;
  act_scales_ = nullptr;
  product_ = workspace_ = nullptr;
  bytes_ = 0;
}

Status QuantGemm::Malloc(void** p, uint64_t bytes) {
  const cudaError_t e = cudaMalloc(p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return CudaStatus(e, ("cudaMalloc of " + FormatBytes(bytes) + " for quantised GEMMs").c_str());
  }
  allocs_.push_back(*p);
  bytes_ += bytes;
  return Status::Ok();
}

Status QuantGemm::Init(int64_t max_rows, int64_t max_n, int64_t max_k) {
  if (max_rows < 1 || max_n < 1 || max_k < 1) {
    return Status::InvalidInput("QuantGemm::Init needs rows, n and k of at least 1");
  }
  Free();
  algos_.clear();
  int device = 0;
  CB_CUDA(cudaGetDevice(&device));
  CB_CUDA(cudaDeviceGetAttribute(&major_, cudaDevAttrComputeCapabilityMajor, device));
  CB_CUDA(cudaDeviceGetAttribute(&minor_, cudaDevAttrComputeCapabilityMinor, device));
  if (lt_ == nullptr) CB_CUBLAS(cublasLtCreate(&lt_));
  max_rows_ = max_rows;
  max_rows_pad_ = QuantRoundUp(max_rows, kQuantRowAlign);
  max_n_pad_ = QuantRoundUp(max_n, kQuantNAlign);
  max_k_pad_ = QuantRoundUp(max_k, kQuantKAlign);
  const int64_t groups = CeilDiv(max_k, kQuantBlock);
  void* p = nullptr;
  CB_RETURN_IF_ERROR(Malloc(&p, static_cast<uint64_t>(max_rows_pad_ * max_k_pad_)));
  act_ = static_cast<uint8_t*>(p);
  CB_RETURN_IF_ERROR(Malloc(&p, static_cast<uint64_t>(groups * max_rows_pad_) * sizeof(float)));
  act_scales_ = static_cast<float*>(p);
  CB_RETURN_IF_ERROR(Malloc(&product_, static_cast<uint64_t>(max_rows_pad_ * max_n_pad_) * 4));
  workspace_bytes_ = kCublasWorkspaceBytes;
  return Malloc(&workspace_, workspace_bytes_);
}

Status QuantGemm::Run(const QuantGemmArgs& a, cudaStream_t stream) {
  if (lt_ == nullptr) return Status::InvalidInput("QuantGemm::Run before Init");
  const QuantWeights* w = a.w;
  if (w == nullptr || !IsQuantized(w->dtype) || a.x == nullptr || a.y == nullptr) {
    return Status::InvalidInput("a quantised GEMM needs int8 or fp8 weights, x and y");
  }
  const std::string shape = std::string(DTypeName(w->dtype)) + " GEMM of " +
                            std::to_string(a.rows) + " x " + std::to_string(w->k) + " by " +
                            std::to_string(w->n) + " x " + std::to_string(w->k) + " weights";
  if (a.rows < 0 || a.x_ld < w->k || a.y_ld < w->n) {
    return Status::InvalidInput(shape + ": bad row count or leading dimension");
  }
  if (a.rows > max_rows_ || w->n_pad > max_n_pad_ || w->k_pad > max_k_pad_) {
    return Status::InvalidInput(shape + ": larger than QuantGemm::Init allowed");
  }
  std::string why;
  if (!QuantGemmSupported(w->dtype, major_, minor_, &why)) return Status::Unsupported(why);
  if (a.rows == 0) return Status::Ok();
  const int64_t rows_pad = QuantRoundUp(a.rows, kQuantRowAlign);
  QuantizeArgs q;
  q.x = a.x;
  q.x_type = a.x_type;
  q.x_ld = a.x_ld;
  q.rows = a.rows;
  q.rows_pad = rows_pad;
  q.k = w->k;
  q.k_pad = w->k_pad;
  q.q = act_;
  q.scales = act_scales_;
  if (w->dtype == DType::kInt8) {
    CB_CUDA(LaunchQuantizeInt8(q, stream));
    return WithContext(RunInt8(a, rows_pad, stream), shape);
  }
  CB_CUDA(LaunchQuantizeFp8(q, stream));
  Fp8Path path = fp8_path_;
  if (path == Fp8Path::kBlockScaled && !Fp8BlockScalingAvailable(major_, minor_)) {
    return Status::Unsupported(shape +
                               ": cuBLASLt's fp8 block scaling needs cuBLAS 12.9+ on "
                               "sm_90; this is sm_" +
                               std::to_string(major_) + std::to_string(minor_) + " with cuBLASLt " +
                               std::to_string(cublasLtGetVersion()));
  }
  if (path == Fp8Path::kAuto) {
    path = Fp8BlockScalingAvailable(major_, minor_) ? Fp8Path::kBlockScaled : Fp8Path::kSliced;
  }
  if (path == Fp8Path::kBlockScaled) {
    bool unsupported = false;
    CB_RETURN_IF_ERROR(WithContext(RunFp8Blocked(a, rows_pad, &unsupported, stream), shape));
    if (!unsupported) {
      last_fp8_path_ = Fp8Path::kBlockScaled;
      return Status::Ok();
    }
    if (fp8_path_ == Fp8Path::kBlockScaled) {
      return Status::Unsupported(shape + ": cuBLASLt offers no block-scaled fp8 algorithm");
    }
  }
  last_fp8_path_ = Fp8Path::kSliced;
  return WithContext(RunFp8Sliced(a, rows_pad, stream), shape);
}

Status QuantGemm::RunInt8(const QuantGemmArgs& a, int64_t rows_pad, cudaStream_t stream) {
  const QuantWeights& w = *a.w;
  bool unsupported = false;
  CB_RETURN_IF_ERROR(Matmul(WeightsByActivations(w, rows_pad, "int8 IMMA"), &unsupported, stream));
  if (unsupported) return Status::Unsupported("cuBLASLt offers no int8 IMMA algorithm");
  EpilogueArgs e = EpilogueInto(a);
  e.acc_int32 = true;
  e.sx = act_scales_;
  e.sw = w.scales;
  CB_CUDA(LaunchQuantEpilogue(e, stream));
  return Status::Ok();
}

/// fp8 with the scales applied by cuBLASLt (VEC128 x BLK128x128), then copied (or added) to y.
Status QuantGemm::RunFp8Blocked(const QuantGemmArgs& a, int64_t rows_pad, bool* unsupported,
                                cudaStream_t stream) {
  const QuantWeights& w = *a.w;
  LtCall c = WeightsByActivations(w, rows_pad, "fp8 block-scaled");
  c.Fp8();
  c.block_scaled = true;
  c.a_scale = w.scales;
  c.b_scale = act_scales_;
  CB_RETURN_IF_ERROR(Matmul(c, unsupported, stream));
  if (*unsupported) return Status::Ok();
  CB_CUDA(LaunchQuantEpilogue(EpilogueInto(a), stream));
  return Status::Ok();
}

/// fp8, correct first: each 128-column K slice an fp8 GEMM with unit scales into the fp32
/// scratch, then y (+)= slice x token-group scale x weight-block scale. Slow: 2 launches per
/// slice and a pass over [rows, n] each; kept as the path that needs no block-scaling support.
Status QuantGemm::RunFp8Sliced(const QuantGemmArgs& a, int64_t rows_pad, cudaStream_t stream) {
  const QuantWeights& w = *a.w;
  const int64_t groups = CeilDiv(w.k, kQuantBlock);
  for (int64_t g = 0; g < groups; ++g) {
    LtCall c = WeightsByActivations(w, rows_pad, "fp8 K-slice");
    c.Fp8();
    c.k = std::min(kQuantBlock, w.k_pad - g * kQuantBlock);  // a multiple of 16
    c.a = w.codes + g * kQuantBlock;
    c.b = act_ + g * kQuantBlock;
    bool unsupported = false;
    CB_RETURN_IF_ERROR(Matmul(c, &unsupported, stream));
    if (unsupported) return Status::Unsupported("cuBLASLt offers no fp8 algorithm for a K slice");
    EpilogueArgs e = EpilogueInto(a);
    e.sx = act_scales_;
    e.sx_offset = g * rows_pad;
    e.sw = w.scales;
    e.sw_block = kQuantBlock;
    e.sw_stride = w.scale_ld;
    e.sw_offset = g;
    e.accumulate = a.accumulate || g > 0;
    CB_CUDA(LaunchQuantEpilogue(e, stream));
  }
  return Status::Ok();
}

/// Describes the call, asks cuBLASLt for an algorithm once per shape and alignment (none:
/// *unsupported, nothing enqueued) and enqueues it.
Status QuantGemm::Matmul(const LtCall& c, bool* unsupported, cudaStream_t stream) {
  *unsupported = false;
  LtDescs d;
  CB_CUBLAS(cublasLtMatmulDescCreate(&d.op, c.compute, c.scale_type));
  CB_CUBLAS(SetDesc(d.op, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T));
  CB_CUBLAS(SetDesc(d.op, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N));
  if (c.block_scaled) {
#if CB_HAVE_FP8_BLOCK_SCALING
    const int32_t a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
    const int32_t b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    CB_CUBLAS(SetDesc(d.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, a_mode));
    CB_CUBLAS(SetDesc(d.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, b_mode));
    CB_CUBLAS(SetDesc(d.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, c.a_scale));
    CB_CUBLAS(SetDesc(d.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, c.b_scale));
#else
    *unsupported = true;
    return Status::Ok();
#endif
  }
  CB_CUBLAS(cublasLtMatrixLayoutCreate(&d.a, c.ab_type, c.k, c.m, c.lda));
  CB_CUBLAS(cublasLtMatrixLayoutCreate(&d.b, c.ab_type, c.k, c.n, c.ldb));
  CB_CUBLAS(cublasLtMatrixLayoutCreate(&d.d, c.d_type, c.m, c.n, c.ldd));
  const uint32_t align_a = AlignmentOf(c.a), align_b = AlignmentOf(c.b);
  const uint32_t align_d = AlignmentOf(c.d);
  const std::string key =
      std::string(c.what) + ":" + std::to_string(c.m) + "x" + std::to_string(c.n) + "x" +
      std::to_string(c.k) + ":" + std::to_string(c.lda) + "," + std::to_string(c.ldd) + ":" +
      std::to_string(align_a) + "," + std::to_string(align_b) + "," + std::to_string(align_d);
  auto it = algos_.find(key);
  if (it == algos_.end()) {
    CB_CUBLAS(cublasLtMatmulPreferenceCreate(&d.pref));
    CB_CUBLAS(SetPref(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, workspace_bytes_));
    CB_CUBLAS(SetPref(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a));
    CB_CUBLAS(SetPref(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b));
    CB_CUBLAS(SetPref(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_d));
    CB_CUBLAS(SetPref(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d));
    cublasLtMatmulHeuristicResult_t h{};
    int found = 0;
    const cublasStatus_t hs =
        cublasLtMatmulAlgoGetHeuristic(lt_, d.op, d.a, d.b, d.d, d.d, d.pref, 1, &h, &found);
    Algo algo;
    if (hs == CUBLAS_STATUS_SUCCESS && found > 0) {
      algo.ok = true;
      algo.algo = h.algo;
    } else if (hs != CUBLAS_STATUS_NOT_SUPPORTED && hs != CUBLAS_STATUS_SUCCESS) {
      return WithContext(CublasStatus(hs, "cublasLtMatmulAlgoGetHeuristic"), c.what);
    }
    it = algos_.emplace(key, algo).first;
  }
  if (!it->second.ok) {
    *unsupported = true;
    return Status::Ok();
  }
  const int32_t one_i = 1, zero_i = 0;
  const float one_f = 1.0f, zero_f = 0.0f;
  const bool int_scale = c.scale_type == CUDA_R_32I;
  const void* alpha = int_scale ? static_cast<const void*>(&one_i) : &one_f;
  const void* beta = int_scale ? static_cast<const void*>(&zero_i) : &zero_f;
  return WithContext(
      CublasStatus(cublasLtMatmul(lt_, d.op, alpha, c.a, d.a, c.b, d.b, beta, c.d, d.d, c.d, d.d,
                                  &it->second.algo, workspace_, workspace_bytes_, stream),
                   "cublasLtMatmul"),
      c.what);
}

}  // namespace cb::cuda
