// The bf16 expert format: own AVX-512 BF16 kernels over every expert of a step in one call.
//
// Layout: per expert, gate and up are one packed matrix whose 64-column blocks interleave
// them (block j: gate rows [32 j, 32 j + 32), then up rows [32 j, 32 j + 32)), so a block's
// accumulators hold matching gate and up values and SwiGLU runs in registers; down is an
// ordinary packed matrix [hidden, ffn]. A work item streams one 64-column block of one expert
// once for all of that expert's pairs (groups of up to four rows: the first group brings the
// block in from memory, the others find it in L2).

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "backends/cpu/expert_kernels.h"
#include "backends/cpu/skinny_gemm.h"
#include "backends/cpu/vec_math.h"
#if defined(__AVX512BF16__)
#include "backends/cpu/bf16_block.h"
#endif

namespace cb::cpu {
namespace {

#if defined(__AVX512BF16__)

constexpr int kGroupRows = 4;
/// Cost of a gate/up work item: streaming its block weighs as much as this many rows.
constexpr int64_t kStreamCost = 4;

/// One 64-column block of one expert and what to do with its results.
struct BlockJob {
  const bf16_t* wb = nullptr;
  int64_t steps = 0;  ///< k-pairs
  int64_t nb = 0;     ///< block index
  bool gate_up = false;
  // gate_up: act[i * ffn_pad + 32 nb + c] = silu(gate) * up.
  bf16_t* act = nullptr;
  int64_t ffn_pad = 0;
  // down: columns [64 nb, 64 nb + n_valid) of output row rows[i]: combined into fp32 with
  // weight[i], or stored as bf16 when weight is null.
  int64_t n_valid = 0;
  const int32_t* rows = nullptr;
  const float* weight = nullptr;
  void* out = nullptr;
  int64_t ld_out = 0;
  /// The block this thread streams next (fetched while this one serves several row groups).
  const bf16_t* next = nullptr;
};

template <int M>
void Group(const BlockJob& job, const bf16_t* const* x, int64_t i0, bool prefetch, NextBlock next) {
  __m512 acc[M][4];
  DotBlockBf16<M>(job.wb, job.steps, x, prefetch, acc, next);
  for (int m = 0; m < M; ++m) {
    const int64_t i = i0 + m;
    if (job.gate_up) {
      bf16_t* a = job.act + i * job.ffn_pad + 32 * job.nb;
      Store16(a, _mm512_mul_ps(Silu16(acc[m][0]), acc[m][2]));
      Store16(a + 16, _mm512_mul_ps(Silu16(acc[m][1]), acc[m][3]));
      continue;
    }
    for (int j = 0; j < 4; ++j) {
      const __mmask16 mask = TailMask(job.n_valid - 16 * j);
      if (mask == 0) break;
      const int64_t at = job.rows[i] * job.ld_out + job.nb * kPackN + 16 * j;
      if (job.weight == nullptr) {
        Store16(static_cast<bf16_t*>(job.out) + at, acc[m][j], mask);
        continue;
      }
      // y as it would come back in bf16 from another rank (CombineRows does the same).
      float* o = static_cast<float*>(job.out) + at;
      const __m512 y = RoundToBf16(acc[m][j]);
      Store16(o, _mm512_fmadd_ps(_mm512_set1_ps(job.weight[i]), y, Load16(o, mask)), mask);
    }
  }
}

/// Pairs [begin, end) of one expert against the job's block, in groups of up to kGroupRows;
/// pair i reads x_of(i).
template <typename XOf>
void RunPairs(const BlockJob& job, int64_t begin, int64_t end, const XOf& x_of) {
  const int64_t groups = (end - begin + kGroupRows - 1) / kGroupRows;
  for (int64_t i0 = begin, g = 0; i0 < end; i0 += kGroupRows, ++g) {
    const int m = static_cast<int>(std::min<int64_t>(kGroupRows, end - i0));
    const bf16_t* x[kGroupRows];
    for (int r = 0; r < m; ++r) x[r] = x_of(i0 + r);
    const bool prefetch = i0 == begin && end - begin > 1;
    NextBlock next;
    if (groups > 1 && job.next != nullptr) {
      next = {reinterpret_cast<const char*>(job.next), g, groups};
    }
    switch (m) {
      case 1:
        Group<1>(job, x, i0, prefetch, next);
        break;
      case 2:
        Group<2>(job, x, i0, prefetch, next);
        break;
      case 3:
        Group<3>(job, x, i0, prefetch, next);
        break;
      default:
        Group<4>(job, x, i0, prefetch, next);
        break;
    }
  }
}

/// Thread `t` of `threads` takes the items whose cost midpoints fall in its share of the total.
bool Owns(int64_t prefix_before, int64_t cost, int64_t total, int t, int threads) {
  const int64_t mid2 = 2 * prefix_before + cost;  // twice the midpoint
  const int owner = static_cast<int>(mid2 * threads / (2 * std::max<int64_t>(total, 1)));
  return std::min(owner, threads - 1) == t;
}

class Bf16Experts final : public ExpertKernels {
 public:
  Status Load(const ExpertShape& shape, const WeightDesc& gate_up, const WeightDesc& down,
              const WeightSource& source);
  Status GateUp(const void* x, int64_t ld_x, const ExpertRows& rows, void* act) override;
  Status DownCombine(const void* act, const ExpertRows& rows, float* out, int64_t ld_out) override {
    return Down(act, rows, out, ld_out);
  }
  Status DownStore(const void* act, const ExpertRows& rows, void* out, int64_t ld_out) override {
    ExpertRows store = rows;
    store.weight = nullptr;
    return Down(act, store, out, ld_out);
  }
  uint64_t AllocatedBytes() const override;

 private:
  Status Down(const void* act, const ExpertRows& rows, void* out, int64_t ld_out);
  /// x rows of the pairs zero-padded to k_pad (hidden not a multiple of 32).
  Status Stage(const bf16_t* x, int64_t ld_x, const ExpertRows& rows);

  ExpertShape shape_;
  int64_t hidden_pad_ = 0;
  std::vector<PackedMatrix> gate_up_, down_;
  AlignedBuffer staging_;
  struct Item {
    int64_t expert, nb, prefix, cost;
  };
  std::vector<Item> items_;
};

Status Bf16Experts::Load(const ExpertShape& shape, const WeightDesc& gate_up,
                         const WeightDesc& down, const WeightSource& source) {
  shape_ = shape;
  hidden_pad_ = (shape.hidden + 31) / 32 * 32;
  const int64_t f = shape.ffn, f_pad = shape.FfnPad();
  gate_up_.resize(shape.experts);
  down_.resize(shape.experts);
  for (int64_t e = 0; e < shape.experts; ++e) {
    const RowMap interleaved = [&](int64_t p) {
      const int64_t half = p % kPackN, row = p / kPackN * 32 + half % 32;
      if (row >= f) return RowSource{};
      return RowSource{&gate_up, e * 2 * f + (half < 32 ? 0 : f) + row};
    };
    CB_RETURN_IF_ERROR(
        PackRows(2 * f_pad, shape.hidden, interleaved, source, DType::kBF16, &gate_up_[e]));
    const RowMap rows = [&](int64_t p) { return RowSource{&down, e * shape.hidden + p}; };
    CB_RETURN_IF_ERROR(PackRows(shape.hidden, f, rows, source, DType::kBF16, &down_[e]));
  }
  items_.reserve(static_cast<size_t>(shape.experts * gate_up_[0].n_pad / kPackN));
  return Status::Ok();
}

uint64_t Bf16Experts::AllocatedBytes() const {
  uint64_t bytes = staging_.size();
  for (const auto& m : gate_up_) bytes += m.data.size();
  for (const auto& m : down_) bytes += m.data.size();
  return bytes;
}

Status Bf16Experts::Stage(const bf16_t* x, int64_t ld_x, const ExpertRows& rows) {
  const int64_t pairs = rows.pairs();
  const size_t need = static_cast<size_t>(pairs * hidden_pad_) * sizeof(bf16_t);
  if (need > staging_.size()) CB_RETURN_IF_ERROR(staging_.Allocate(need, "expert input rows"));
  for (int64_t i = 0; i < pairs; ++i) {
    bf16_t* dst = staging_.as<bf16_t>() + i * hidden_pad_;
    std::memcpy(dst, x + rows.row[i] * ld_x, shape_.hidden * sizeof(bf16_t));
    std::memset(dst + shape_.hidden, 0, (hidden_pad_ - shape_.hidden) * sizeof(bf16_t));
  }
  return Status::Ok();
}

Status Bf16Experts::GateUp(const void* x_in, int64_t ld_x, const ExpertRows& rows, void* act) {
  const bf16_t* x = static_cast<const bf16_t*>(x_in);
  const bool staged = hidden_pad_ != shape_.hidden;
  if (staged) CB_RETURN_IF_ERROR(Stage(x, ld_x, rows));
  const int64_t blocks = gate_up_[0].n_pad / kPackN;
  items_.clear();
  int64_t total = 0;
  for (int64_t e = 0; e < rows.experts; ++e) {
    const int64_t n = rows.offset[e + 1] - rows.offset[e];
    if (n == 0) continue;
    for (int64_t nb = 0; nb < blocks; ++nb) {
      items_.push_back({e, nb, total, kStreamCost + n});
      total += kStreamCost + n;
    }
  }
  const bf16_t* staging = staging_.as<bf16_t>();
  const int64_t hp = hidden_pad_;
#pragma omp parallel if (items_.size() > 1)
  {
    const int t = omp_get_thread_num(), threads = omp_get_num_threads();
    std::vector<const Item*> mine;
    for (const Item& it : items_) {
      if (Owns(it.prefix, it.cost, total, t, threads)) mine.push_back(&it);
    }
    for (size_t j = 0; j < mine.size(); ++j) {
      const Item& it = *mine[j];
      const PackedMatrix& w = gate_up_[it.expert];
      BlockJob job;
      job.wb = w.data.as<bf16_t>() + it.nb * w.BlockElems();
      if (j + 1 < mine.size()) {
        job.next =
            gate_up_[mine[j + 1]->expert].data.as<bf16_t>() + mine[j + 1]->nb * w.BlockElems();
      }
      job.steps = w.k_pad / 2;
      job.nb = it.nb;
      job.gate_up = true;
      job.act = static_cast<bf16_t*>(act);
      job.ffn_pad = shape_.FfnPad();
      const int64_t begin = rows.offset[it.expert], end = rows.offset[it.expert + 1];
      if (staged) {
        RunPairs(job, begin, end, [&](int64_t i) { return staging + i * hp; });
      } else {
        RunPairs(job, begin, end, [&](int64_t i) { return x + rows.row[i] * ld_x; });
      }
    }
  }
  return Status::Ok();
}

Status Bf16Experts::Down(const void* act_in, const ExpertRows& rows, void* out, int64_t ld_out) {
  const bf16_t* act = static_cast<const bf16_t*>(act_in);
  const int64_t blocks = down_[0].n_pad / kPackN, f_pad = shape_.FfnPad();
#pragma omp parallel if (blocks > 1)
  {
    // Threads own column blocks, so combining into a row never races; within a thread the
    // experts go in ascending order (a token's experts are added in route order).
    const int t = omp_get_thread_num(), threads = omp_get_num_threads();
    const int64_t b0 = blocks * t / threads, b1 = blocks * (t + 1) / threads;
    auto next_expert = [&](int64_t e) {
      while (e < rows.experts && rows.offset[e] == rows.offset[e + 1]) ++e;
      return e;
    };
    for (int64_t e = next_expert(0); e < rows.experts; e = next_expert(e + 1)) {
      const int64_t begin = rows.offset[e], end = rows.offset[e + 1];
      const PackedMatrix& w = down_[e];
      const int64_t after = next_expert(e + 1);
      for (int64_t nb = b0; nb < b1; ++nb) {
        BlockJob job;
        job.wb = w.data.as<bf16_t>() + nb * w.BlockElems();
        if (nb + 1 < b1) {
          job.next = job.wb + w.BlockElems();
        } else if (after < rows.experts) {
          job.next = down_[after].data.as<bf16_t>() + b0 * w.BlockElems();
        }
        job.steps = w.k_pad / 2;
        job.nb = nb;
        job.n_valid = std::min<int64_t>(kPackN, shape_.hidden - nb * kPackN);
        job.rows = rows.row;
        job.weight = rows.weight;
        job.out = out;
        job.ld_out = ld_out;
        RunPairs(job, begin, end, [&](int64_t i) { return act + i * f_pad; });
      }
    }
  }
  return Status::Ok();
}

#endif  // __AVX512BF16__

}  // namespace

Status MakeBf16ExpertKernels(const ExpertShape& shape, const WeightDesc& gate_up,
                             const WeightDesc& down, const WeightSource& source,
                             std::unique_ptr<ExpertKernels>* out) {
#if defined(__AVX512BF16__)
  if (!SkinnyGemmBf16Available()) return Status::Unsupported("this CPU has no AVX512_BF16");
  auto k = std::make_unique<Bf16Experts>();
  CB_RETURN_IF_ERROR(k->Load(shape, gate_up, down, source));
  *out = std::move(k);
  return Status::Ok();
#else
  (void)shape, (void)gate_up, (void)down, (void)source, (void)out;
  return Status::Unsupported("built without AVX512_BF16");
#endif
}

}  // namespace cb::cpu
