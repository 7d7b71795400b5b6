// Expert parallelism in the cpu session (--ep N): each (token, expert) row goes to the
// expert's rank as [int32 expert id | hidden values in the session dtype] (bf16 on the wire in
// a bf16 session), the local experts run on what arrives (the same ExpertKernels as one rank),
// their outputs travel back in the session dtype and are combined in route order
// (CombineRows: the arithmetic of one rank's DownCombine). Where the layer has shared experts,
// the router and the dispatch run first and the shared experts while the rows are in flight.
#include <algorithm>
#include <cstring>

#include "backends/cpu/cpu_session.h"

namespace cb::cpu {
namespace {

int64_t RowBytes(int64_t hidden, DType dtype) {
  return (4 + hidden * static_cast<int64_t>(DTypeBytes(dtype)) + 3) / 4 * 4;
}

}  // namespace

void CpuSession::PlanEpOverlap(const OpStream& s) {
  ep_overlap_.clear();
  if (ep_size_ <= 1) return;
  for (int l = 0; l < s.layers; ++l) {
    const auto [begin, end] = s.LayerRange(l);
    EpOverlap o;
    bool shared = false, router = false, experts = false;
    for (size_t i = begin; i < end; ++i) {
      const Op& op = s.ops[i];
      if (!shared && op.kind == OpKind::kMatMul && op.out == Buf::kSharedGateUp) {
        o.shared = i;
        shared = true;
      }
      if (op.kind == OpKind::kRouter) o.router = i, router = true;
      if (op.kind == OpKind::kMoeExperts) o.experts = i, experts = true;
    }
    if (shared && router && experts && o.shared < o.router && o.router < o.experts) {
      ep_overlap_.push_back(o);
    }
  }
}

Status CpuSession::StartEpDispatch(const Op& op) {
  const ActBuffer& in = B(op.in);
  const int64_t hidden = dims_.hidden, k = dims_.top_k, per_rank = dims_.local_experts;
  const size_t dt = DTypeBytes(cfg_.dtype);
  const int64_t row_bytes = RowBytes(hidden, cfg_.dtype);
  const float* route = B(Buf::kRoute).f32();
  const int ep = ep_size_;
  Communicator& comm = *cfg_.ep_comm;
  // This rank's (token, expert) pairs grouped by the expert's rank, tokens in order.
  ep_counts_.assign(ep, 0);
  for (int64_t i = 0; i < tokens_ * k; ++i) {
    ++ep_counts_[static_cast<int64_t>(route[(i / k) * 2 * k + i % k]) / per_rank];
  }
  ep_offsets_.assign(ep, 0);
  for (int r = 1; r < ep; ++r) ep_offsets_[r] = ep_offsets_[r - 1] + ep_counts_[r - 1];
  ep_send_.resize(std::max<size_t>(1, static_cast<size_t>(tokens_ * k * row_bytes)));
  ep_pair_token_.resize(tokens_ * k);
  ep_pair_weight_.resize(tokens_ * k);
  std::vector<int> fill = ep_offsets_;
  for (int64_t t = 0; t < tokens_; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const int32_t id = static_cast<int32_t>(route[t * 2 * k + j]);
      const int slot = fill[id / per_rank]++;
      char* row = ep_send_.data() + slot * row_bytes;
      std::memcpy(row, &id, 4);
      std::memcpy(row + 4, static_cast<const char*>(in.mem.data()) + t * hidden * dt, hidden * dt);
      ep_pair_token_[slot] = static_cast<int32_t>(t);
      ep_pair_weight_[slot] = route[t * 2 * k + k + j];
    }
  }
  // Row counts, then the rows.
  std::vector<int> ones(ep, 4), at(ep);
  for (int r = 0; r < ep; ++r) at[r] = 4 * r;
  ep_rcounts_.assign(ep, 0);
  CB_RETURN_IF_ERROR(comm.AllToAllVBytes(ep_counts_.data(), ones.data(), at.data(),
                                         ep_rcounts_.data(), ones.data(), at.data()));
  ep_roffsets_.assign(ep, 0);
  for (int r = 1; r < ep; ++r) ep_roffsets_[r] = ep_roffsets_[r - 1] + ep_rcounts_[r - 1];
  ep_received_ = ep_roffsets_[ep - 1] + ep_rcounts_[ep - 1];
  std::vector<int> sc(ep), so(ep), rc(ep), ro(ep);
  for (int r = 0; r < ep; ++r) {
    sc[r] = static_cast<int>(ep_counts_[r] * row_bytes);
    so[r] = static_cast<int>(ep_offsets_[r] * row_bytes);
    rc[r] = static_cast<int>(ep_rcounts_[r] * row_bytes);
    ro[r] = static_cast<int>(ep_roffsets_[r] * row_bytes);
  }
  ep_recv_.resize(std::max<size_t>(1, static_cast<size_t>(ep_received_ * row_bytes)));
  return comm.StartAllToAllVBytes(ep_send_.data(), sc.data(), so.data(), ep_recv_.data(), rc.data(),
                                  ro.data(), &ep_pending_);
}

Status CpuSession::FinishEpExperts(const Op& op, const OpPlan& plan) {
  Status arrived = ep_pending_->Finish();
  ep_pending_.reset();
  CB_RETURN_IF_ERROR(arrived);
  const int64_t hidden = dims_.hidden, k = dims_.top_k, per_rank = dims_.local_experts;
  const size_t dt = DTypeBytes(cfg_.dtype);
  const int64_t row_bytes = RowBytes(hidden, cfg_.dtype);
  const int ep = ep_size_;
  // The received rows grouped by local expert (in arrival order within an expert).
  ep_offset_.assign(per_rank + 1, 0);
  std::vector<int32_t> expert(ep_received_);
  for (int64_t i = 0; i < ep_received_; ++i) {
    std::memcpy(&expert[i], ep_recv_.data() + i * row_bytes, 4);
    expert[i] -= static_cast<int32_t>(dims_.expert_begin);
    if (expert[i] < 0 || expert[i] >= per_rank) {
      return Status::Internal("received a row for another rank's expert");
    }
    ++ep_offset_[expert[i] + 1];
  }
  for (int64_t e = 0; e < per_rank; ++e) ep_offset_[e + 1] += ep_offset_[e];
  ep_row_.resize(ep_received_);
  std::vector<int64_t> fill(ep_offset_.begin(), ep_offset_.end() - 1);
  for (int64_t i = 0; i < ep_received_; ++i) ep_row_[fill[expert[i]]++] = static_cast<int32_t>(i);
  const ExpertRows rows{ep_offset_.data(), ep_row_.data(), nullptr, per_rank};
  CB_RETURN_IF_ERROR(EnsureMoePairs(ep_received_));
  ep_result_.resize(std::max<size_t>(1, static_cast<size_t>(ep_received_ * hidden) * dt));
  if (ep_received_ > 0) {
    CB_RETURN_IF_ERROR(plan.experts->GateUp(
        ep_recv_.data() + 4, row_bytes / static_cast<int64_t>(dt), rows, moe_act_.data()));
    CB_RETURN_IF_ERROR(plan.experts->DownStore(moe_act_.data(), rows, ep_result_.data(), hidden));
  }
  // Results back to the pairs' ranks (the reverse all-to-all), then the combine.
  std::vector<int> sc(ep), so(ep), rc(ep), ro(ep);
  const int64_t out_bytes = hidden * static_cast<int64_t>(dt);
  for (int r = 0; r < ep; ++r) {
    sc[r] = static_cast<int>(ep_rcounts_[r] * out_bytes);
    so[r] = static_cast<int>(ep_roffsets_[r] * out_bytes);
    rc[r] = static_cast<int>(ep_counts_[r] * out_bytes);
    ro[r] = static_cast<int>(ep_offsets_[r] * out_bytes);
  }
  ep_back_.resize(std::max<size_t>(1, static_cast<size_t>(tokens_ * k * out_bytes)));
  CB_RETURN_IF_ERROR(cfg_.ep_comm->AllToAllVBytes(ep_result_.data(), sc.data(), so.data(),
                                                  ep_back_.data(), rc.data(), ro.data()));
  float* out = B(op.out).f32();
  std::memset(out, 0, static_cast<size_t>(tokens_ * hidden) * sizeof(float));
  CombineRows(ep_back_.data(), cfg_.dtype, hidden, ep_pair_token_.data(), ep_pair_weight_.data(),
              tokens_ * k, hidden, out, hidden);
  return Status::Ok();
}

}  // namespace cb::cpu
