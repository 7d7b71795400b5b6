#include "harness/micro/decode_gemv_kernel.h"

#include <vector>

#include "backends/cpu/matmul.h"
#include "backends/cpu/packed_matrix.h"
#include "backends/cpu/quant_gemm.h"
#include "backends/cpu/skinny_gemm.h"
#include "workloads/weights.h"

namespace cb {

struct DecodeGemvKernel::Impl {
  DType dtype;
  int64_t n = 0, k = 0;
  std::vector<std::unique_ptr<cpu::PackedMatrix>> copies;
  size_t next = 0;
  cpu::MatmulRunner runner;
  std::vector<float> x, y;
  std::vector<uint16_t> x_bf16;
};

bool DecodeGemvKernel::Supported(DType dtype) {
  return dtype == DType::kF32 || (dtype == DType::kBF16 && cpu::SkinnyGemmBf16Available()) ||
         (dtype == DType::kInt8 && cpu::Int8GemmAvailable()) ||
         (dtype == DType::kFP8 && cpu::Fp8GemmAvailable());
}

Status DecodeGemvKernel::Create(DType dtype, int64_t n, int64_t k, int copies,
                                std::unique_ptr<DecodeGemvKernel>* out) {
  if (!Supported(dtype)) {
    return Status::Unsupported("gemv: the cpu backend has no " + std::string(DTypeName(dtype)) +
                               " kernel on this CPU");
  }
  std::unique_ptr<DecodeGemvKernel> kernel(new DecodeGemvKernel());
  auto impl = std::make_unique<Impl>();
  impl->dtype = dtype;
  impl->n = n;
  impl->k = k;
  WeightDesc d;
  d.name = d.key = "micro.gemv";
  d.rows = d.global_rows = n;
  d.cols = d.global_cols = k;
  d.scale = 0.05f;
  const WeightSource source(1);
  for (int c = 0; c < copies; ++c) {
    auto m = std::make_unique<cpu::PackedMatrix>();
    CB_RETURN_IF_ERROR(cpu::PackWeights({&d}, source, dtype, m.get()));
    impl->copies.push_back(std::move(m));
  }
  const int64_t k_pad = impl->copies[0]->k_pad;
  CB_RETURN_IF_ERROR(impl->runner.Reserve(1, k_pad, dtype));
  impl->x.assign(k, 0.5f);
  impl->x_bf16.assign(k_pad, FloatToBf16(0.5f));
  impl->y.assign(n, 0.0f);
  kernel->impl_ = std::move(impl);
  kernel->Run();  // warm-up
  *out = std::move(kernel);
  return Status::Ok();
}

DecodeGemvKernel::~DecodeGemvKernel() = default;

void DecodeGemvKernel::Run() {
  Impl& s = *impl_;
  const cpu::PackedMatrix& w = *s.copies[s.next];
  s.next = (s.next + 1) % s.copies.size();
  // Inputs as decode steps give them: fp32 to the int8 and fp32 kernels, bf16 to the others.
  if (s.dtype == DType::kInt8 || s.dtype == DType::kF32) {
    (void)s.runner.Run(w, s.x.data(), DType::kF32, s.k, 1, s.y.data(), s.n);
  } else {
    (void)s.runner.Run(w, s.x_bf16.data(), DType::kBF16, w.k_pad, 1, s.y.data(), s.n);
  }
}

double DecodeGemvKernel::Flops() const { return 2.0 * static_cast<double>(impl_->n) * impl_->k; }

double DecodeGemvKernel::Bytes() const {
  const cpu::PackedMatrix& w = *impl_->copies[0];
  return static_cast<double>(w.data.size() + w.scales.size() + w.comp.size()) +
         4.0 * static_cast<double>(impl_->k + impl_->n);
}

std::string DecodeGemvKernel::Label() const {
  switch (impl_->dtype) {
    case DType::kInt8:
      return "cpu int8 gemv (avx512_vnni)";
    case DType::kFP8:
      return "cpu fp8 weight-only gemv (e4m3 -> bf16, avx512_bf16)";
    case DType::kBF16:
      return "cpu bf16 skinny gemm (avx512_bf16)";
    default:
      return "cpu fp32 gemv (avx512f)";
  }
}

}  // namespace cb
