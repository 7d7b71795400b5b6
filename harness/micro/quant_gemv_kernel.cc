#include "harness/micro/quant_gemv_kernel.h"

#include <vector>

#include "backends/cpu/matmul.h"
#include "backends/cpu/packed_matrix.h"
#include "backends/cpu/quant_gemm.h"
#include "workloads/weights.h"

namespace cb {

struct QuantGemvKernel::Impl {
  DType dtype;
  int64_t n = 0, k = 0;
  std::vector<std::unique_ptr<cpu::PackedMatrix>> copies;
  size_t next = 0;
  cpu::MatmulRunner runner;
  std::vector<float> x, y;
  std::vector<uint16_t> x_bf16;
};

bool QuantGemvKernel::Supported(DType dtype) {
  return (dtype == DType::kInt8 && cpu::Int8GemmAvailable()) ||
         (dtype == DType::kFP8 && cpu::Fp8GemmAvailable());
}

Status QuantGemvKernel::Create(DType dtype, int64_t n, int64_t k, int copies,
                               std::unique_ptr<QuantGemvKernel>* out) {
  if (!Supported(dtype)) {
    return Status::Unsupported("gemv: the cpu backend has no " + std::string(DTypeName(dtype)) +
                               " kernel on this CPU");
  }
  std::unique_ptr<QuantGemvKernel> kernel(new QuantGemvKernel());
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

QuantGemvKernel::~QuantGemvKernel() = default;

void QuantGemvKernel::Run() {
  Impl& s = *impl_;
  const cpu::PackedMatrix& w = *s.copies[s.next];
  s.next = (s.next + 1) % s.copies.size();
  if (s.dtype == DType::kInt8) {
    (void)s.runner.Run(w, s.x.data(), DType::kF32, s.k, 1, s.y.data(), s.n);
  } else {
    (void)s.runner.Run(w, s.x_bf16.data(), DType::kBF16, w.k_pad, 1, s.y.data(), s.n);
  }
}

double QuantGemvKernel::Flops() const { return 2.0 * static_cast<double>(impl_->n) * impl_->k; }

double QuantGemvKernel::Bytes() const {
  const cpu::PackedMatrix& w = *impl_->copies[0];
  return static_cast<double>(w.data.size() + w.scales.size() + w.comp.size()) +
         4.0 * static_cast<double>(impl_->k + impl_->n);
}

std::string QuantGemvKernel::Label() const {
  return impl_->dtype == DType::kInt8 ? "cpu int8 gemv (avx512_vnni)"
                                      : "cpu fp8 weight-only gemv (e4m3 -> bf16, avx512_bf16)";
}

}  // namespace cb
