// The cpu session: Load, Run and the dispatch of ops to their kernels, buffer access for tests.
#include "backends/cpu/cpu_session.h"

#include <algorithm>
#include <cstring>

#include "backends/step_check.h"

namespace cb::cpu {

DType SessionBufDType(Buf b, DType dtype) {
  switch (b) {
    case Buf::kH:
    case Buf::kAttn:
    case Buf::kAct:
    case Buf::kHLast:
    case Buf::kSharedAct:
    case Buf::kQaNorm:
      return MatmulInputDType(dtype);
    default:
      return DType::kF32;
  }
}

void CpuSession::Progress(uint64_t bytes) {
  load_done_ += bytes;
  if (cfg_.load_progress) cfg_.load_progress(load_done_, std::max(load_done_, load_total_));
}

Status CpuSession::Load(const OpStream& stream, const WeightSource& weights) {
  loaded_ = false;
  matrices_.clear();
  embeds_.clear();
  gains_.clear();
  plans_.clear();
  experts_.clear();
  dense_f32_.clear();
  mla_weights_.clear();
  CB_RETURN_IF_ERROR(CheckStream(stream));
  const DType kv = cfg_.kv_dtype.value_or(DefaultKvDType(cfg_.dtype));
  if (stream.dims.Mla() && kv != DefaultKvDType(cfg_.dtype)) {  // LatentCache: PlanMla
    return Status::Unsupported("this backend keeps an MLA model's latent KV cache in " +
                               std::string(DTypeName(DefaultKvDType(cfg_.dtype))) + ", not " +
                               std::string(DTypeName(kv)));
  }
  if (IsQuantized(cfg_.dtype)) CB_RETURN_IF_ERROR(CheckQuantizedStream(stream));
  dims_ = stream.dims;
  layers_ = stream.layers;
  tp_size_ = stream.shard.tp_size;
  ep_size_ = stream.shard.ep_size;
  if (ep_size_ > 1 && (cfg_.ep_comm == nullptr || cfg_.ep_comm->size() != ep_size_)) {
    return Status::InvalidInput("a stream with experts split " + std::to_string(ep_size_) +
                                " ways needs an expert-parallel communicator of that size");
  }
  if (tp_size_ > 1 && (cfg_.tp_comm == nullptr || cfg_.tp_comm->size() != tp_size_)) {
    return Status::InvalidInput("a stream split " + std::to_string(tp_size_) +
                                " ways needs a tensor-parallel communicator of that size");
  }
  eps_ = static_cast<float>(stream.model.norm_eps);
  num_ops_ = stream.ops.size();
  moe_ = stream.model.moe;
  zipf_s_ = stream.model.routing_zipf_s;
  load_done_ = 0;
  load_total_ = 0;
  for (const WeightDesc& w : stream.weights) {
    load_total_ += static_cast<uint64_t>(w.Elements()) * DTypeBytes(cfg_.dtype);
  }
  CB_RETURN_IF_ERROR(PlanWeights(stream, weights));
  CB_RETURN_IF_ERROR(PlanMoe(stream, weights));
  CB_RETURN_IF_ERROR(PlanMla(stream, weights));
  CB_RETURN_IF_ERROR(AllocateBuffers(stream));
  PlanEpOverlap(stream);
  loaded_ = true;
  return Status::Ok();
}

uint64_t CpuSession::AllocatedBytes() const {
  uint64_t bytes = kv_.AllocatedBytes() + attn_scratch_.AllocatedBytes() + rope_.size() +
                   matmul_.AllocatedBytes();
  for (const auto& m : matrices_) bytes += m->data.size() + m->scales.size() + m->comp.size();
  for (const auto& e : embeds_) bytes += e->plain.size();
  for (const auto& [name, g] : gains_) bytes += g.size() * sizeof(float);
  for (const auto& b : bufs_) bytes += b.mem.size();
  for (const auto& e : experts_) bytes += e->AllocatedBytes();
  for (const auto& m : mla_weights_) bytes += m->AllocatedBytes();
  for (const auto& [name, v] : dense_f32_) bytes += v.size() * sizeof(float);
  return bytes + router_logits_.size() + moe_act_.size() + latent_.AllocatedBytes() +
         mla_rope_.size() + mla_scratch_.AllocatedBytes();
}

Status CpuSession::PrepareStep(const StepIO& io) {
  int64_t total = 0;
  CB_RETURN_IF_ERROR(CheckStep(io, cfg_, dims_.vocab_full, &total));
  tokens_ = total;
  seqs_ = static_cast<int64_t>(io.seqs.size());
  int64_t row = 0;
  for (const SeqStep& s : io.seqs) {
    for (int64_t j = 0; j < s.new_tokens; ++j, ++row) {
      row_pos_[row] = {s.slot, static_cast<int32_t>(s.past_len + j)};
      positions_[row] = static_cast<int32_t>(s.past_len + j);
    }
  }
  if (!io.tokens.empty()) {
    std::memcpy(bufs_[static_cast<int>(Buf::kTokens)].i32(), io.tokens.data(),
                io.tokens.size() * sizeof(int32_t));
  }
  return Status::Ok();
}

Status CpuSession::Run(const OpStream& stream, OpRange range, StepIO& io) {
  if (!loaded_) return Status::InvalidInput("Run before Load");
  if (stream.ops.size() != num_ops_ || stream.layers != layers_) {
    return Status::InvalidInput("Run with a stream other than the loaded one");
  }
  if (range.begin > range.end || range.end > stream.ops.size()) {
    return Status::InvalidInput("op range [" + std::to_string(range.begin) + ", " +
                                std::to_string(range.end) + ") outside the stream of " +
                                std::to_string(stream.ops.size()) + " ops");
  }
  CB_RETURN_IF_ERROR(PrepareStep(io));
  const EpOverlap* overlap = nullptr;  // the MoE layer whose dispatch is in flight
  for (size_t i = range.begin; i < range.end; ++i) {
    Status s = Status::Ok();
    if (overlap == nullptr) {
      for (const EpOverlap& o : ep_overlap_) {
        if (o.shared == i && o.experts < range.end) overlap = &o;
      }
      if (overlap != nullptr) {
        // Router and dispatch first; the shared experts then run while the rows travel.
        s = RunOp(stream.ops[overlap->router], plans_[overlap->router], io);
        if (s.ok()) s = StartEpDispatch(stream.ops[overlap->experts]);
      }
    }
    if (ep_pending_ != nullptr) ep_pending_->Progress();
    if (s.ok() && overlap != nullptr && i == overlap->router) continue;
    if (s.ok() && overlap != nullptr && i == overlap->experts) {
      s = FinishEpExperts(stream.ops[i], plans_[i]);
      overlap = nullptr;
    } else if (s.ok()) {
      s = RunOp(stream.ops[i], plans_[i], io);
    }
    if (!s.ok()) {
      return Status(s.code(),
                    "op " + std::to_string(i) + " (" + OpName(stream.ops[i]) + "): " + s.message());
    }
  }
  return Status::Ok();
}

Status CpuSession::RunAttention(const Op& op, const StepIO& io) {
  const ActBuffer& in = B(op.in);
  for (const SeqStep& s : io.seqs) {
    const int64_t valid = kv_.Valid(op.layer, s.slot);
    if (valid < s.past_len) {
      return Status::InvalidInput(
          "slot " + std::to_string(s.slot) + " holds " + std::to_string(valid) +
          " cached positions, the step says past_len " + std::to_string(s.past_len));
    }
  }
  Attention(in.f32(), tokens_, row_pos_.data(), {dims_.heads, dims_.kv_heads, dims_.head_dim}, kv_,
            op.layer, B(op.out).view(), attn_scratch_);
  for (const SeqStep& s : io.seqs) kv_.Valid(op.layer, s.slot) = s.past_len + s.new_tokens;
  return Status::Ok();
}

Status CpuSession::RunAllGather(const Op& op) {
  if (tp_size_ == 1) return Status::Ok();
  // Each rank holds [S, vocab / tp] at the front of the buffer; the result is [S, vocab] with
  // rank r's shard in columns [r * vocab / tp, (r + 1) * vocab / tp).
  float* out = B(op.out).f32();
  const int64_t local = dims_.vocab, rows = Rows(op.out);
  gather_scratch_.resize(static_cast<size_t>(tp_size_ * rows * local));
  CB_RETURN_IF_ERROR(
      cfg_.tp_comm->AllGather(out, static_cast<size_t>(rows * local), gather_scratch_.data()));
  for (int r = 0; r < tp_size_; ++r) {
    for (int64_t row = 0; row < rows; ++row) {
      std::memcpy(out + row * op.n + r * local, gather_scratch_.data() + (r * rows + row) * local,
                  local * sizeof(float));
    }
  }
  return Status::Ok();
}

Status CpuSession::RunOp(const Op& op, const OpPlan& plan, StepIO& io) {
  const ActBuffer& in = B(op.in);
  const ActBuffer& out = B(op.out);
  switch (op.kind) {
    case OpKind::kEmbedding:
      if (plan.embed->packed != nullptr) {
        EmbeddingPacked(in.i32(), tokens_, *plan.embed->packed, out.view());
      } else {
        EmbeddingPlain(in.i32(), tokens_, plan.embed->plain.data(), plan.embed->dtype, op.n,
                       out.view());
      }
      return Status::Ok();
    case OpKind::kRmsNorm:
      RmsNorm(in.view(), out.view(), Rows(op.in), op.n, plan.gain[0], eps_);
      return Status::Ok();
    case OpKind::kMatMul:
      return matmul_.Run(*plan.matrix, in.mem.data(), in.dtype, op.k, Rows(op.in), out.f32(), op.n);
    case OpKind::kQkNorm:
      QkNorm(in.f32(), tokens_, in.width, dims_.heads, dims_.kv_heads, dims_.head_dim, plan.gain[0],
             plan.gain[1], eps_);
      return Status::Ok();
    case OpKind::kRope:
      Rope(in.f32(), tokens_, in.width, dims_.heads + dims_.kv_heads, dims_.head_dim,
           positions_.data(), rope_.as<float>());
      return Status::Ok();
    case OpKind::kAttention:
      return RunAttention(op, io);
    case OpKind::kSwiGlu:
      SwiGlu(in.f32(), out.view(), tokens_, op.n);
      return Status::Ok();
    case OpKind::kResidualAdd:
      AddInPlace(out.f32(), in.f32(), Rows(op.out) * op.n);
      return Status::Ok();
    case OpKind::kAllReduce:
      if (tp_size_ == 1) return Status::Ok();  // one rank: nothing to combine
      return cfg_.tp_comm->AllReduceSum(out.f32(), static_cast<size_t>(Rows(op.out) * op.n));
    case OpKind::kAllGather:
      return RunAllGather(op);
    case OpKind::kSelectLast: {
      int64_t row = 0;
      for (int64_t s = 0; s < seqs_; ++s) {
        row += io.seqs[s].new_tokens;
        std::memcpy(out.f32() + s * op.n, in.f32() + (row - 1) * op.n, op.n * sizeof(float));
      }
      return Status::Ok();
    }
    case OpKind::kSampleGreedy:
      io.next_tokens.resize(seqs_);
      for (int64_t s = 0; s < seqs_; ++s) {
        io.next_tokens[s] = ArgMax(in.f32() + s * op.n, op.n);
        out.i32()[s] = io.next_tokens[s];
      }
      if (io.want_logits) io.logits.assign(in.f32(), in.f32() + seqs_ * op.n);
      return Status::Ok();
    case OpKind::kRouter:
      return RunRouter(op, plan, io);
    case OpKind::kMoeExperts:
      if (ep_size_ > 1) {
        CB_RETURN_IF_ERROR(StartEpDispatch(op));
        return FinishEpExperts(op, plan);
      }
      return RunMoeExperts(op, plan);
    case OpKind::kMlaKvNorm:
      LatentNorm(in.f32(), tokens_, in.width, op.n, plan.gain[0], eps_);
      return Status::Ok();
    case OpKind::kMlaRope:
      MlaRope(B(Buf::kQ).f32(), B(Buf::kKva).f32(), tokens_, dims_.heads, dims_.QkHeadDim(),
              dims_.qk_rope, dims_.kv_lora, positions_.data(), mla_rope_.as<float>());
      return Status::Ok();
    case OpKind::kMlaAttention:
      return RunMlaAttention(op, plan, io);
  }
  return Status::Internal("unknown op kind");
}

Status CpuSession::ReadBuffer(Buf buf, int64_t rows, std::vector<float>* out) const {
  if (!loaded_) return Status::InvalidInput("ReadBuffer before Load");
  if (buf == Buf::kNone) return Status::InvalidInput("no such buffer");
  const ActBuffer& a = B(buf);
  if (rows < 0 || rows > a.rows) {
    return Status::InvalidInput("buffer '" + std::string(BufName(buf)) + "' has " +
                                std::to_string(a.rows) + " rows");
  }
  const int64_t n = rows * a.width;
  out->resize(n);
  for (int64_t i = 0; i < n; ++i) {
    (*out)[i] = a.ids                     ? static_cast<float>(a.i32()[i])
                : a.dtype == DType::kBF16 ? Bf16ToFloat(a.mem.as<uint16_t>()[i])
                                          : a.f32()[i];
  }
  return Status::Ok();
}

Status CpuSession::WriteBuffer(Buf buf, int64_t rows, const std::vector<float>& data) {
  if (!loaded_) return Status::InvalidInput("WriteBuffer before Load");
  if (buf == Buf::kNone) return Status::InvalidInput("no such buffer");
  ActBuffer& a = bufs_[static_cast<int>(buf)];
  if (rows < 0 || rows > a.rows || static_cast<int64_t>(data.size()) != rows * a.width) {
    return Status::InvalidInput("WriteBuffer: " + std::to_string(data.size()) + " values are not " +
                                std::to_string(rows) + " rows of '" + std::string(BufName(buf)) +
                                "'");
  }
  for (size_t i = 0; i < data.size(); ++i) {
    if (a.ids) {
      a.i32()[i] = static_cast<int32_t>(data[i]);
    } else if (a.dtype == DType::kBF16) {
      a.mem.as<uint16_t>()[i] = FloatToBf16(data[i]);
    } else {
      a.f32()[i] = data[i];
    }
  }
  return Status::Ok();
}

}  // namespace cb::cpu
