// The weights of the int8 / fp8 GEMMs (quant_gemm.h): the codes and scales of
// workloads/quant.h generated on the host, laid out as cuBLASLt reads them, and uploaded.

#include <algorithm>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/quant_gemm.h"
#include "workloads/quant.h"

namespace cb::cuda {
namespace {

constexpr int64_t kPackRows = 256;  ///< weight rows quantised per host pass

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Sets the fp8 block scales of rows [row, row + count) (one weight, scale s), refusing a
/// block that already holds another weight's different scale.
Status SetBlockScales(int64_t row, int64_t count, float s, const std::string& name,
                      std::vector<std::string>* owner, QuantHostWeights* out) {
  const int64_t groups = CeilDiv(out->k, kQuantBlock);
  for (int64_t p = row / kQuantBlock; p <= (row + count - 1) / kQuantBlock; ++p) {
    float* b = out->scales.data() + p * out->scale_ld;
    if (!(*owner)[p].empty() && b[0] != s) {
      return Status::Unsupported("fp8 weights of different scales share a block of 128 rows (" +
                                 (*owner)[p] + " and " + name + ")");
    }
    (*owner)[p] = name;
    std::fill(b, b + groups, s);
  }
  return Status::Ok();
}

}  // namespace

Status PackQuantWeights(const std::vector<const WeightDesc*>& parts, const WeightSource& source,
                        DType dtype, QuantHostWeights* out) {
  if (!IsQuantized(dtype)) return Status::InvalidInput("PackQuantWeights takes int8 or fp8");
  if (parts.empty() || parts[0] == nullptr) return Status::InvalidInput("no weights to pack");
  *out = QuantHostWeights{};
  out->dtype = dtype;
  out->k = parts[0]->cols;
  for (const WeightDesc* d : parts) {
    if (d == nullptr || d->cols != out->k || d->rows <= 0) {
      return Status::InvalidInput("the weights of one quantised matmul need rows and " +
                                  std::to_string(out->k) + " columns each");
    }
    out->n += d->rows;
  }
  if (out->k <= 0) return Status::InvalidInput("quantised weights need columns");
  out->n_pad = QuantRoundUp(out->n, kQuantNAlign);
  out->k_pad = QuantRoundUp(out->k, kQuantKAlign);
  out->codes.assign(static_cast<size_t>(out->n_pad * out->k_pad), 0);
  const int64_t row_blocks = CeilDiv(out->n, kQuantBlock);
  if (dtype == DType::kFP8) {
    out->scale_ld = QuantRoundUp(CeilDiv(out->k, kQuantBlock), 4);
    out->scales.assign(static_cast<size_t>(row_blocks * out->scale_ld), 0.0f);
  } else {
    out->scales.assign(static_cast<size_t>(out->n_pad), 0.0f);
  }
  std::vector<std::string> owner(static_cast<size_t>(row_blocks));
  std::vector<uint8_t> rows;
  int64_t row = 0;
  for (const WeightDesc* d : parts) {
    const float s = WeightQuantScale(*d, dtype);
    if (dtype == DType::kFP8)
      CB_RETURN_IF_ERROR(SetBlockScales(row, d->rows, s, d->name, &owner, out));
    for (int64_t r0 = 0; r0 < d->rows; r0 += kPackRows) {
      const int64_t count = std::min(kPackRows, d->rows - r0);
      rows.resize(static_cast<size_t>(count * out->k));
      QuantizedWeightRows(*d, source, dtype, r0, count, rows.data());
      for (int64_t i = 0; i < count; ++i) {
        std::copy_n(rows.data() + i * out->k, out->k,
                    out->codes.data() + (row + r0 + i) * out->k_pad);
        if (dtype == DType::kInt8) out->scales[static_cast<size_t>(row + r0 + i)] = s;
      }
    }
    row += d->rows;
  }
  return Status::Ok();
}

Status UploadQuantWeights(const QuantHostWeights& host, const DeviceAlloc& alloc,
                          cudaStream_t stream, QuantWeights* out) {
  void* codes = nullptr;
  void* scales = nullptr;
  CB_RETURN_IF_ERROR(alloc(&codes, host.codes.size(), "quantised weight codes"));
  CB_RETURN_IF_ERROR(alloc(&scales, host.scales.size() * sizeof(float), "quantised weight scales"));
  CB_CUDA(
      cudaMemcpyAsync(codes, host.codes.data(), host.codes.size(), cudaMemcpyHostToDevice, stream));
  CB_CUDA(cudaMemcpyAsync(scales, host.scales.data(), host.scales.size() * sizeof(float),
                          cudaMemcpyHostToDevice, stream));
  out->dtype = host.dtype;
  out->n = host.n;
  out->k = host.k;
  out->n_pad = host.n_pad;
  out->k_pad = host.k_pad;
  out->scale_ld = host.scale_ld;
  out->codes = static_cast<const uint8_t*>(codes);
  out->scales = static_cast<const float*>(scales);
  return Status::Ok();
}

}  // namespace cb::cuda
