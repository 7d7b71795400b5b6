#include "backends/cuda/fusion_plan.h"

#include "backends/cuda/cuda_plan.h"

namespace cb::cuda {
namespace {

constexpr int kBufCount = static_cast<int>(Buf::kNextTokens) + 1;

/// Whether the op reads only its `in` buffer (and `out` when it updates it in place).
bool DenseOp(OpKind k) {
  switch (k) {
    case OpKind::kEmbedding:
    case OpKind::kRmsNorm:
    case OpKind::kMatMul:
    case OpKind::kQkNorm:
    case OpKind::kRope:
    case OpKind::kAttention:
    case OpKind::kSwiGlu:
    case OpKind::kResidualAdd:
    case OpKind::kAllReduce:
    case OpKind::kSelectLast:
    case OpKind::kAllGather:
    case OpKind::kSampleGreedy:
      return true;
    default:
      return false;
  }
}

class Planner {
 public:
  Planner(const OpStream& s, OpRange r, const FusionContext& c) : s_(s), r_(r), c_(c) {}

  LaunchGroup At(size_t i) const {
    const Op& op = s_.ops[i];
    LaunchGroup g;
    g.first = g.op = i;
    switch (op.kind) {
      case OpKind::kRmsNorm:
        if (c_.paths(Path::kFuseNorm) && Prologued(i, Prologue::kRmsNorm, &g)) return g;
        break;
      case OpKind::kSwiGlu:
        if (c_.paths(Path::kFuseSwiGlu) && Prologued(i, Prologue::kSwiGlu, &g)) return g;
        break;
      case OpKind::kMatMul:
        g.kind = GroupKind::kMatMul;
        g.skinny = Skinny(op, Prologue::kNone);
        g.accumulate = ResidualFollows(i);
        g.count = g.accumulate ? 2 : 1;
        return g;
      case OpKind::kResidualAdd:
        if (Has(i + 1) && s_.ops[i + 1].kind == OpKind::kRmsNorm && s_.ops[i + 1].in == op.out &&
            BufferRows(op.in) == BufferRows(s_.ops[i + 1].out)) {
          g.kind = GroupKind::kAddNorm;
          g.count = 2;
        }
        return g;
      case OpKind::kQkNorm:
        if (c_.paths(Path::kFuseRope) && Has(i + 2) && s_.ops[i + 1].kind == OpKind::kRope &&
            s_.ops[i + 2].kind == OpKind::kAttention && s_.ops[i + 1].in == op.in &&
            s_.ops[i + 2].in == op.in) {
          g = {GroupKind::kRopeAttention, i, 3, i + 2};
        }
        return g;
      case OpKind::kRope:
        if (c_.paths(Path::kFuseRope) && Has(i + 1) && s_.ops[i + 1].kind == OpKind::kAttention &&
            s_.ops[i + 1].in == op.in) {
          g = {GroupKind::kRopeAttention, i, 2, i + 1};
        }
        return g;
      default:
        break;
    }
    return g;
  }

 private:
  bool Has(size_t i) const { return i < r_.end; }
  bool Dead(size_t op, Buf b) const { return ((*c_.dead_after)[op] >> static_cast<int>(b)) & 1u; }
  int64_t Rows(Buf b) const {
    return BufferRows(b) == Rows::kTokenRows ? c_.token_rows : c_.seq_rows;
  }
  DType Type(Buf b) const { return BufDType(b, c_.dtype, c_.paths(Path::kNarrow)); }

  bool Skinny(const Op& mm, Prologue p) const {
    if (!c_.paths(Path::kSkinnyGemm)) return false;
    return PlanSkinny(Rows(mm.in), mm.n, mm.k, BufferWidth(c_.dims, mm.in), c_.dtype, p, c_.sms).ok;
  }

  /// The residual add right after matmul `i` adds its fp32 output into the residual stream,
  /// and nothing reads that output afterwards: the matmul can add into the stream itself.
  bool ResidualFollows(size_t i) const {
    if (!c_.paths(Path::kFuseResidual) || !Has(i + 1)) return false;
    const Op& m = s_.ops[i];
    const Op& a = s_.ops[i + 1];
    return a.kind == OpKind::kResidualAdd && a.in == m.out && a.out != m.out && a.n == m.n &&
           BufferRows(a.in) == BufferRows(a.out) && BufferWidth(c_.dims, a.out) == m.n &&
           Type(m.out) == DType::kF32 && Type(a.out) == DType::kF32 && Dead(i + 1, m.out);
  }

  /// RMSNorm or SwiGLU at `i` whose only reader is the skinny matmul right after it.
  bool Prologued(size_t i, Prologue p, LaunchGroup* g) const {
    const Op& op = s_.ops[i];
    if (!Has(i + 1)) return false;
    const Op& mm = s_.ops[i + 1];
    // Every block reads the prologue's input while others already write their outputs: they
    // must be different buffers.
    if (mm.kind != OpKind::kMatMul || mm.in != op.out || mm.k != op.n || mm.out == op.in ||
        !Dead(i + 1, op.out) || BufferRows(op.in) != BufferRows(op.out) || !Skinny(mm, p)) {
      return false;
    }
    if (p == Prologue::kRmsNorm && Type(op.in) != DType::kF32) return false;
    g->kind = GroupKind::kMatMul;
    g->op = i + 1;
    g->skinny = true;
    g->prologue = p;
    g->accumulate = ResidualFollows(i + 1) && s_.ops[i + 2].out != op.in;
    g->count = g->accumulate ? 3 : 2;
    return true;
  }

  const OpStream& s_;
  OpRange r_;
  const FusionContext& c_;
};

}  // namespace

std::vector<uint32_t> DeadAfter(const OpStream& s) {
  const size_t n = s.ops.size();
  std::vector<uint32_t> dead(n, 0);
  for (size_t i = 0; i < n; ++i) {
    for (int b = 1; b < kBufCount; ++b) {
      const Buf buf = static_cast<Buf>(b);
      bool is_dead = true;  // nothing touches it again
      for (size_t step = 1; step <= n; ++step) {
        const Op& op = s.ops[(i + step) % n];
        const bool reads = !DenseOp(op.kind) || op.in == buf ||
                           (op.out == buf && (op.in == op.out || op.kind == OpKind::kResidualAdd));
        if (reads) {
          is_dead = false;
          break;
        }
        if (op.out == buf) break;
      }
      if (is_dead) dead[i] |= 1u << b;
    }
  }
  return dead;
}

std::vector<LaunchGroup> PlanLaunches(const OpStream& s, OpRange range, const FusionContext& c) {
  std::vector<LaunchGroup> out;
  const Planner planner(s, range, c);
  for (size_t i = range.begin; i < range.end;) {
    out.push_back(planner.At(i));
    i += out.back().count;
  }
  return out;
}

}  // namespace cb::cuda
