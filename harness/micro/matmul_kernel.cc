#include "harness/micro/matmul_kernel.h"

#include <algorithm>
#include <cmath>
#include <oneapi/dnnl/dnnl.hpp>

namespace cb {

struct MatmulKernel::State {
  dnnl::engine engine;
  dnnl::stream stream;
  dnnl::matmul prim;
  dnnl::memory src, dst;
  std::vector<dnnl::memory> weights;  ///< identical copies, used in turn
  size_t next = 0;
};

namespace {

/// What a tensor of a matmul of `t` holds: int8 is u8 activations x s8 weights -> s32 (the
/// VNNI instruction's operands), the others one type throughout.
enum class Role { kSrc, kWeights, kDst };
dnnl::memory::data_type DnnlType(DType t, Role role = Role::kSrc) {
  using dt = dnnl::memory::data_type;
  if (t == DType::kInt8)
    return role == Role::kSrc ? dt::u8 : role == Role::kWeights ? dt::s8 : dt::s32;
  return t == DType::kBF16 ? dt::bf16 : dt::f32;
}

/// Deterministic values in [-1, 1): a cheap integer hash of (salt, index).
float PatternValue(uint64_t salt, uint64_t i) {
  uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ salt;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return static_cast<float>(x >> 40) / static_cast<float>(1ull << 23) - 1.0f;
}

/// Writes `values` (or the pattern when empty) into a plain row-major memory of `dtype`.
void FillPlain(dnnl::memory& mem, DType dtype, int64_t count, const std::vector<float>& values,
               uint64_t salt, Role role) {
  void* p = mem.get_data_handle();
  for (int64_t i = 0; i < count; ++i) {
    const float v = values.empty() ? PatternValue(salt, static_cast<uint64_t>(i)) : values[i];
    if (dtype == DType::kInt8) {  // [-1, 1) -> u8 [0, 254] or s8 [-127, 127]
      const int q = static_cast<int>(std::lround(std::clamp(v, -1.0f, 1.0f) * 127));
      if (role == Role::kSrc) {
        static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(q + 127);
      } else {
        static_cast<int8_t*>(p)[i] = static_cast<int8_t>(q);
      }
    } else if (dtype == DType::kBF16) {
      static_cast<uint16_t*>(p)[i] = FloatToBf16(v);
    } else {
      static_cast<float*>(p)[i] = v;
    }
  }
}

}  // namespace

bool MatmulKernel::Supported(DType dtype) {
  if (dtype == DType::kF32) return true;
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  if (dtype == DType::kInt8) {
    const auto vnni = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_vnni);
    return (isa & vnni) == vnni;
  }
  if (dtype != DType::kBF16) return false;
  const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return (isa & bf16) == bf16;
}

MatmulKernel::~MatmulKernel() = default;

int MatmulKernel::CopiesForFootprint(DType dtype, int64_t n, int64_t k, double footprint_bytes,
                                     int max_copies) {
  const double one = static_cast<double>(n * k) * DTypeBytes(dtype);
  const double copies = std::ceil(footprint_bytes / one);
  return static_cast<int>(std::clamp(copies, 1.0, static_cast<double>(std::max(1, max_copies))));
}

Status MatmulKernel::Create(const MatmulConfig& c, std::unique_ptr<MatmulKernel>* out) {
  using dnnl::memory;
  const int64_t m = c.m, n = c.n, k = c.k;
  const DType dtype = c.dtype;
  if (m <= 0 || n <= 0 || k <= 0) return Status::InvalidInput("matmul: dimensions must be > 0");
  if (c.weight_copies < 1) return Status::InvalidInput("matmul: weight_copies must be >= 1");
  if (!Supported(dtype)) {
    return Status::Unsupported("matmul: " + std::string(DTypeName(dtype)) +
                               " is not supported natively by oneDNN on this CPU");
  }
  if (!c.src.empty() && static_cast<int64_t>(c.src.size()) != m * k) {
    return Status::InvalidInput("matmul: src must have M*K values");
  }
  if (!c.weights.empty() && static_cast<int64_t>(c.weights.size()) != k * n) {
    return Status::InvalidInput("matmul: weights must have K*N values");
  }
  std::unique_ptr<MatmulKernel> kernel(new MatmulKernel());
  kernel->dtype_ = dtype;
  kernel->m_ = m;
  kernel->n_ = n;
  kernel->k_ = k;
  kernel->weight_copies_ = c.weight_copies;
  try {
    auto st = std::make_unique<State>();
    st->engine = dnnl::engine(dnnl::engine::kind::cpu, 0);
    st->stream = dnnl::stream(st->engine);
    const memory::desc src_md({m, k}, DnnlType(dtype, Role::kSrc), memory::format_tag::ab);
    const memory::desc any_wei_md({k, n}, DnnlType(dtype, Role::kWeights), memory::format_tag::any);
    const memory::desc dst_md({m, n}, DnnlType(dtype, Role::kDst), memory::format_tag::ab);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, any_wei_md, dst_md),
                                          st->engine);
    kernel->impl_ = pd.impl_info_str();
    st->prim = dnnl::matmul(pd);

    st->src = memory(pd.src_desc(), st->engine);
    st->dst = memory(pd.dst_desc(), st->engine);
    FillPlain(st->src, dtype, m * k, c.src, 0x5eed5eedull, Role::kSrc);

    memory user_wei(memory::desc({k, n}, DnnlType(dtype, Role::kWeights), memory::format_tag::ab),
                    st->engine);
    FillPlain(user_wei, dtype, k * n, c.weights, 0xfeedbeefull, Role::kWeights);
    for (int i = 0; i < c.weight_copies; ++i) {
      st->weights.emplace_back(pd.weights_desc(), st->engine);
      dnnl::reorder(user_wei, st->weights.back()).execute(st->stream, user_wei, st->weights.back());
    }
    st->stream.wait();
    kernel->state_ = std::move(st);
  } catch (const dnnl::error& e) {
    return Status::Internal("matmul " + std::string(DTypeName(dtype)) + " " + std::to_string(m) +
                            "x" + std::to_string(n) + "x" + std::to_string(k) +
                            ": oneDNN: " + e.what());
  }
  *out = std::move(kernel);
  return Status::Ok();
}

void MatmulKernel::Run() {
  State& st = *state_;
  const dnnl::memory& weights = st.weights[st.next];
  st.next = st.next + 1 == st.weights.size() ? 0 : st.next + 1;
  st.prim.execute(st.stream,
                  {{DNNL_ARG_SRC, st.src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, st.dst}});
  st.stream.wait();
}

std::vector<float> MatmulKernel::Output() const {
  std::vector<float> out(static_cast<size_t>(m_ * n_));
  const void* p = state_->dst.get_data_handle();
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = dtype_ == DType::kBF16   ? Bf16ToFloat(static_cast<const uint16_t*>(p)[i])
             : dtype_ == DType::kInt8 ? static_cast<float>(static_cast<const int32_t*>(p)[i])
                                      : static_cast<const float*>(p)[i];
  }
  return out;
}

double MatmulKernel::Bytes() const {
  const double dst = dtype_ == DType::kInt8 ? 4.0 : static_cast<double>(DTypeBytes(dtype_));
  return static_cast<double>(m_ * k_ + k_ * n_) * static_cast<double>(DTypeBytes(dtype_)) +
         static_cast<double>(m_ * n_) * dst;
}

}  // namespace cb
