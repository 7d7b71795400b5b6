#include "harness/micro/weight_gen_kernel.h"

#include "backends/cpu/packed_matrix.h"

namespace cb {

struct WeightGenKernel::Impl {
  DType dtype;
  WeightDesc desc;
  WeightSource source{1};
  cpu::PackedMatrix matrix;
};

WeightGenKernel::WeightGenKernel(DType dtype, int64_t n, int64_t k)
    : impl_(std::make_unique<Impl>()) {
  impl_->dtype = dtype;
  impl_->desc = {"micro.gen", "", n, k, n, k, 0, 0, WeightInit::kUniform, 0.02f};
}

WeightGenKernel::~WeightGenKernel() = default;

Status WeightGenKernel::Run() {
  return cpu::PackWeights({&impl_->desc}, impl_->source, impl_->dtype, &impl_->matrix);
}

double WeightGenKernel::Bytes() const {
  return static_cast<double>(impl_->desc.Elements()) * DTypeBytes(impl_->dtype);
}

}  // namespace cb
