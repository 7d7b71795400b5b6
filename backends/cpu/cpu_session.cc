#include "backends/cpu/cpu_session.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/cpu/skinny_gemm.h"
#include "backends/step_check.h"
#include "workloads/moe_routing.h"

namespace cb::cpu {
namespace {

std::string OpName(const Op& op) {
  std::string s(OpKindName(op.kind));
  if (op.layer >= 0) s += " of layer " + std::to_string(op.layer);
  return s;
}

/// Identity of a weight's values: an embedding and a tied LM head have the same.
std::string WeightIdentity(const WeightDesc& w) {
  return (w.key.empty() ? w.name : w.key) + "|" + std::to_string(w.rows) + "x" +
         std::to_string(w.cols) + "@" + std::to_string(w.row_offset) + "," +
         std::to_string(w.col_offset) + "/" + std::to_string(w.global_cols) + "|" +
         std::to_string(static_cast<int>(w.init)) + "|" + std::to_string(w.scale);
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += n + ";";
  return s;
}

}  // namespace

DType CpuSession::BufDType(Buf b) const {
  switch (b) {
    case Buf::kH:
    case Buf::kAttn:
    case Buf::kAct:
    case Buf::kHLast:
    case Buf::kSharedAct:
    case Buf::kQaNorm:
      return cfg_.dtype;
    default:
      return DType::kF32;
  }
}

// ---------------------------------------------------------------------------------------------
// Load

Status CpuSession::CheckStream(const OpStream& s) const {
  const LocalDims& d = s.dims;
  if (d.hidden <= 0 || d.heads <= 0 || (d.kv_heads <= 0 && !d.Mla()) || d.head_dim <= 0 ||
      d.ffn <= 0 || d.vocab <= 0) {
    return Status::InvalidInput("the op stream has empty dimensions");
  }
  if (d.Mla() ? d.qk_rope % 2 != 0 : d.head_dim % 2 != 0) {
    return Status::InvalidInput("rotary embedding needs an even head_dim, got " +
                                std::to_string(d.Mla() ? d.qk_rope : d.head_dim));
  }
  if (!d.Mla() && d.heads % d.kv_heads != 0) {
    return Status::InvalidInput("query heads (" + std::to_string(d.heads) +
                                ") must be a multiple of KV heads (" + std::to_string(d.kv_heads) +
                                ")");
  }
  auto need_f32 = [&](const Op& op, Buf b) -> Status {
    if (BufDType(b) != DType::kF32 || b == Buf::kTokens || b == Buf::kNextTokens) {
      return Status::Unsupported("the cpu backend runs " + OpName(op) + " on fp32 buffers, not '" +
                                 std::string(BufName(b)) + "'");
    }
    return Status::Ok();
  };
  auto need_width = [&](const Op& op, Buf b, int64_t w) -> Status {
    if (BufferWidth(d, b) != w) {
      return Status::InvalidInput(OpName(op) + ": buffer '" + std::string(BufName(b)) + "' is " +
                                  std::to_string(BufferWidth(d, b)) + " wide, the op needs " +
                                  std::to_string(w));
    }
    return Status::Ok();
  };
  for (const Op& op : s.ops) {
    for (const std::string& w : op.weights) {
      if (s.FindWeight(w) == nullptr) {
        return Status::InvalidInput(OpName(op) + " names weight '" + w +
                                    "' the stream does not declare");
      }
    }
    if (op.layer >= s.layers) return Status::InvalidInput(OpName(op) + ": layer out of range");
    switch (op.kind) {
      case OpKind::kEmbedding:
        if (op.in != Buf::kTokens || op.weights.size() != 1) {
          return Status::InvalidInput(OpName(op) + " must read token ids with one table");
        }
        if (s.FindWeight(op.weights[0])->cols != op.n) {
          return Status::InvalidInput(OpName(op) + ": table width differs from n");
        }
        CB_RETURN_IF_ERROR(need_width(op, op.out, op.n));
        break;
      case OpKind::kRmsNorm:
        if (op.weights.size() != 1 || s.FindWeight(op.weights[0])->Elements() != op.n) {
          return Status::InvalidInput(OpName(op) + " needs one gain of width n");
        }
        CB_RETURN_IF_ERROR(need_width(op, op.in, op.n));
        CB_RETURN_IF_ERROR(need_width(op, op.out, op.n));
        if (BufferRows(op.in) != BufferRows(op.out)) {
          return Status::InvalidInput(OpName(op) + " maps token rows onto sequence rows");
        }
        break;
      case OpKind::kMatMul:
        CB_RETURN_IF_ERROR(need_f32(op, op.out));
        CB_RETURN_IF_ERROR(need_width(op, op.in, op.k));
        if (BufferWidth(d, op.out) < op.n || BufferRows(op.in) != BufferRows(op.out)) {
          return Status::InvalidInput(OpName(op) + ": output buffer does not fit");
        }
        break;
      case OpKind::kQkNorm:
        if (op.weights.size() != 2) return Status::InvalidInput(OpName(op) + " needs two gains");
        for (const auto& w : op.weights) {
          if (s.FindWeight(w)->Elements() != d.head_dim) {
            return Status::InvalidInput(OpName(op) + ": gain width differs from head_dim");
          }
        }
        [[fallthrough]];
      case OpKind::kRope:
      case OpKind::kAttention:
        CB_RETURN_IF_ERROR(need_f32(op, op.in));
        CB_RETURN_IF_ERROR(need_width(op, op.in, d.QkvWidth()));
        if (op.kind == OpKind::kAttention) {
          if (op.layer < 0) return Status::InvalidInput(OpName(op) + " needs a layer");
          CB_RETURN_IF_ERROR(need_width(op, op.out, d.heads * d.head_dim));
        }
        break;
      case OpKind::kSwiGlu:
        CB_RETURN_IF_ERROR(need_f32(op, op.in));
        CB_RETURN_IF_ERROR(need_width(op, op.in, 2 * op.n));
        CB_RETURN_IF_ERROR(need_width(op, op.out, op.n));
        break;
      case OpKind::kResidualAdd:
      case OpKind::kSelectLast:
        CB_RETURN_IF_ERROR(need_f32(op, op.in));
        CB_RETURN_IF_ERROR(need_f32(op, op.out));
        CB_RETURN_IF_ERROR(need_width(op, op.in, op.n));
        CB_RETURN_IF_ERROR(need_width(op, op.out, op.n));
        if (op.kind == OpKind::kSelectLast &&
            (BufferRows(op.in) != Rows::kTokenRows || BufferRows(op.out) != Rows::kSequenceRows)) {
          return Status::InvalidInput(OpName(op) + " maps token rows onto sequence rows");
        }
        break;
      case OpKind::kSampleGreedy:
        CB_RETURN_IF_ERROR(need_f32(op, op.in));
        CB_RETURN_IF_ERROR(need_width(op, op.in, op.n));
        if (op.out != Buf::kNextTokens) {
          return Status::InvalidInput(OpName(op) + " must write next_tokens");
        }
        break;
      case OpKind::kAllReduce:
      case OpKind::kAllGather:
        break;
      case OpKind::kRouter:
        if (op.in != Buf::kH || op.out != Buf::kRoute || op.n != d.experts || op.k != d.hidden ||
            op.weights.empty() || op.weights.size() > 2) {
          return Status::InvalidInput(OpName(op) +
                                      " must map h to route with a gate [experts, "
                                      "hidden] and an optional bias");
        }
        break;
      case OpKind::kMoeExperts:
        if (op.in != Buf::kH || op.weights.size() != 2 || d.local_experts <= 0) {
          return Status::InvalidInput(OpName(op) + " must read h with gate_up and down weights");
        }
        CB_RETURN_IF_ERROR(need_f32(op, op.out));
        CB_RETURN_IF_ERROR(need_width(op, op.out, d.hidden));
        break;
      case OpKind::kMlaKvNorm:
      case OpKind::kMlaRope:
      case OpKind::kMlaAttention:
        if (!d.Mla()) return Status::InvalidInput(OpName(op) + " in a stream without MLA");
        if (op.kind == OpKind::kMlaAttention && (op.layer < 0 || op.weights.size() != 1)) {
          return Status::InvalidInput(OpName(op) + " needs a layer and the kv_b weight");
        }
        if (op.kind == OpKind::kMlaKvNorm && op.n != d.kv_lora) {
          return Status::InvalidInput(OpName(op) + " normalises kv_lora columns");
        }
        break;
    }
  }
  return Status::Ok();
}

Status CpuSession::PlanWeights(const OpStream& s, const WeightSource& weights) {
  plans_.assign(s.ops.size(), OpPlan{});
  std::map<std::string, const PackedMatrix*> by_group;
  // Matmul weights first: an embedding may then read a tied LM head's packed copy.
  for (size_t i = 0; i < s.ops.size(); ++i) {
    const Op& op = s.ops[i];
    if (op.kind != OpKind::kMatMul) continue;
    const std::string group = JoinNames(op.weights);
    auto it = by_group.find(group);
    if (it == by_group.end()) {
      std::vector<const WeightDesc*> parts;
      for (const auto& w : op.weights) parts.push_back(s.FindWeight(w));
      auto m = std::make_unique<PackedMatrix>();
      CB_RETURN_IF_ERROR(PackWeights(parts, weights, cfg_.dtype, m.get()));
      if (m->n != op.n || m->k != op.k) {
        return Status::InvalidInput(OpName(op) + ": weights are " + std::to_string(m->n) + " x " +
                                    std::to_string(m->k) + ", the op says " + std::to_string(op.n) +
                                    " x " + std::to_string(op.k));
      }
      CB_RETURN_IF_ERROR(matmul_.CheckLayout(*m));
      it = by_group.emplace(group, m.get()).first;
      matrices_.push_back(std::move(m));
    }
    plans_[i].matrix = it->second;
  }
  for (size_t i = 0; i < s.ops.size(); ++i) {
    const Op& op = s.ops[i];
    if (op.kind == OpKind::kEmbedding) {
      const WeightDesc& d = *s.FindWeight(op.weights[0]);
      auto table = std::make_unique<EmbedTable>();
      table->vocab = d.rows;
      for (size_t j = 0; j < s.ops.size() && table->packed == nullptr; ++j) {
        const Op& m = s.ops[j];
        if (m.kind == OpKind::kMatMul && m.weights.size() == 1 &&
            WeightIdentity(*s.FindWeight(m.weights[0])) == WeightIdentity(d)) {
          table->packed = plans_[j].matrix;  // tied: read rows of the LM head's packed copy
        }
      }
      if (table->packed == nullptr) {
        table->dtype = cfg_.dtype;
        CB_RETURN_IF_ERROR(table->plain.Allocate(
            static_cast<size_t>(d.Elements()) * DTypeBytes(cfg_.dtype), d.name.c_str()));
        constexpr int64_t kRows = 256;  // generate in blocks: no full fp32 copy
        std::vector<float> tmp(static_cast<size_t>(kRows * d.cols));
        for (int64_t r0 = 0; r0 < d.rows; r0 += kRows) {
          const int64_t rows = std::min(kRows, d.rows - r0);
          weights.FillRows(d, r0, rows, tmp.data());
          for (int64_t e = 0; e < rows * d.cols; ++e) {
            if (cfg_.dtype == DType::kBF16) {
              table->plain.as<uint16_t>()[r0 * d.cols + e] = FloatToBf16(tmp[e]);
            } else {
              table->plain.as<float>()[r0 * d.cols + e] = tmp[e];
            }
          }
        }
      }
      plans_[i].embed = table.get();
      embeds_.push_back(std::move(table));
    }
    if (op.kind == OpKind::kRmsNorm || op.kind == OpKind::kQkNorm) {
      for (size_t w = 0; w < op.weights.size(); ++w) {
        auto it = gains_.find(op.weights[w]);
        if (it == gains_.end()) {
          const WeightDesc& d = *s.FindWeight(op.weights[w]);
          std::vector<float> g(static_cast<size_t>(d.Elements()));
          weights.FillRows(d, 0, d.rows, g.data());
          for (float& v : g) v = RoundTo(cfg_.dtype, v);
          it = gains_.emplace(op.weights[w], std::move(g)).first;
        }
        plans_[i].gain[w] = it->second.data();
      }
    }
  }
  return Status::Ok();
}

Status CpuSession::AllocateBuffers(const OpStream& s) {
  for (int b = 1; b < kBufCount; ++b) {
    const Buf buf = static_cast<Buf>(b);
    ActBuffer& a = bufs_[b];
    a.ids = buf == Buf::kTokens || buf == Buf::kNextTokens;
    a.dtype = BufDType(buf);
    a.width = BufferWidth(dims_, buf);
    a.rows = BufferRows(buf) == Rows::kTokenRows ? cfg_.max_step_tokens : cfg_.max_sequences;
    const size_t elem = a.ids ? sizeof(int32_t) : DTypeBytes(a.dtype);
    CB_RETURN_IF_ERROR(a.mem.Allocate(static_cast<size_t>(a.rows * a.width) * elem,
                                      std::string(BufName(buf)).c_str()));
  }
  // Inputs to convert (dtype differs from the weights') or pad (k not a multiple of 16).
  for (size_t i = 0; i < s.ops.size(); ++i) {
    const Op& op = s.ops[i];
    if (op.kind != OpKind::kMatMul) continue;
    const PackedMatrix& m = *plans_[i].matrix;
    int64_t rows = 0;
    if (BufDType(op.in) != m.dtype) {
      rows = bufs_[static_cast<int>(op.in)].rows;
    } else if (m.k != m.k_pad) {
      rows = std::min(kSkinnyMaxRows, bufs_[static_cast<int>(op.in)].rows);
    }
    if (rows > 0) CB_RETURN_IF_ERROR(matmul_.Reserve(rows, m.k_pad, m.dtype));
  }

  if (dims_.Mla()) {  // the latent cache replaces K and V (AllocateMoeMla)
    row_pos_.resize(cfg_.max_step_tokens);
    positions_.resize(cfg_.max_step_tokens);
    return Status::Ok();
  }
  const AttentionShape shape{dims_.heads, dims_.kv_heads, dims_.head_dim};
  CB_RETURN_IF_ERROR(kv_.Allocate(std::max(layers_, 1), cfg_.max_sequences, dims_.kv_heads,
                                  cfg_.max_context, dims_.head_dim, cfg_.dtype));
  CB_RETURN_IF_ERROR(attn_scratch_.Allocate(omp_get_max_threads(), shape, cfg_.max_context));

  const int64_t hd = dims_.head_dim, half = hd / 2;
  CB_RETURN_IF_ERROR(rope_.Allocate(static_cast<size_t>(cfg_.max_context * hd) * sizeof(float),
                                    "the rotary table"));
  for (int64_t p = 0; p < cfg_.max_context; ++p) {
    float* row = rope_.as<float>() + p * hd;
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p) * std::pow(s.model.rope_theta, -2.0 * i / hd);
      row[i] = static_cast<float>(std::cos(angle));
      row[half + i] = static_cast<float>(std::sin(angle));
    }
  }
  row_pos_.resize(cfg_.max_step_tokens);
  positions_.resize(cfg_.max_step_tokens);
  return Status::Ok();
}

Status CpuSession::Load(const OpStream& stream, const WeightSource& weights) {
  loaded_ = false;
  matrices_.clear();
  embeds_.clear();
  gains_.clear();
  plans_.clear();
  CB_RETURN_IF_ERROR(CheckStream(stream));
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
  experts_.clear();
  dense_f32_.clear();
  CB_RETURN_IF_ERROR(PlanWeights(stream, weights));
  CB_RETURN_IF_ERROR(PlanMoeMla(stream, weights));
  CB_RETURN_IF_ERROR(AllocateBuffers(stream));
  CB_RETURN_IF_ERROR(AllocateMoeMla(stream));
  loaded_ = true;
  return Status::Ok();
}

uint64_t CpuSession::AllocatedBytes() const {
  uint64_t bytes = kv_.AllocatedBytes() + attn_scratch_.AllocatedBytes() + rope_.size() +
                   matmul_.AllocatedBytes();
  for (const auto& m : matrices_) bytes += m->data.size();
  for (const auto& e : embeds_) bytes += e->plain.size();
  for (const auto& [name, g] : gains_) bytes += g.size() * sizeof(float);
  for (const auto& b : bufs_) bytes += b.mem.size();
  for (const auto& e : experts_) {
    for (const auto& m : e->gate_up) bytes += m->data.size();
    for (const auto& m : e->down) bytes += m->data.size();
  }
  for (const auto& [name, v] : dense_f32_) bytes += v.size() * sizeof(float);
  bytes += router_logits_.size() + moe_in_.size() + moe_gu_.size() + moe_act_.size() +
           moe_out_.size() + latent_.AllocatedBytes() + mla_rope_.size() + mla_scratch_.size();
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Run

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
  for (size_t i = range.begin; i < range.end; ++i) {
    Status s = RunOp(stream.ops[i], plans_[i], io);
    if (!s.ok()) {
      return Status(s.code(),
                    "op " + std::to_string(i) + " (" + OpName(stream.ops[i]) + "): " + s.message());
    }
  }
  return Status::Ok();
}

Status CpuSession::RunOp(const Op& op, const OpPlan& plan, StepIO& io) {
  const ActBuffer& in = bufs_[static_cast<int>(op.in)];
  const ActBuffer& out = bufs_[static_cast<int>(op.out)];
  switch (op.kind) {
    case OpKind::kEmbedding: {
      const EmbedTable& t = *plan.embed;
      if (t.packed != nullptr) {
        EmbeddingPacked(in.i32(), tokens_, *t.packed, out.view());
      } else {
        EmbeddingPlain(in.i32(), tokens_, t.plain.data(), t.dtype, op.n, out.view());
      }
      return Status::Ok();
    }
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
    case OpKind::kAttention: {
      for (const SeqStep& s : io.seqs) {
        const int64_t valid = kv_.Valid(op.layer, s.slot);
        if (valid < s.past_len) {
          return Status::InvalidInput("slot " + std::to_string(s.slot) + " holds " +
                                      std::to_string(valid) +
                                      " cached positions, the step says "
                                      "past_len " +
                                      std::to_string(s.past_len));
        }
      }
      Attention(in.f32(), tokens_, row_pos_.data(), {dims_.heads, dims_.kv_heads, dims_.head_dim},
                kv_, op.layer, out.view(), attn_scratch_);
      for (const SeqStep& s : io.seqs) kv_.Valid(op.layer, s.slot) = s.past_len + s.new_tokens;
      return Status::Ok();
    }
    case OpKind::kSwiGlu:
      SwiGlu(in.f32(), out.view(), tokens_, op.n);
      return Status::Ok();
    case OpKind::kResidualAdd:
      AddInPlace(out.f32(), in.f32(), Rows(op.out) * op.n);
      return Status::Ok();
    case OpKind::kAllReduce:
      if (tp_size_ == 1) return Status::Ok();  // one rank: nothing to combine
      return cfg_.tp_comm->AllReduceSum(out.f32(), static_cast<size_t>(Rows(op.out) * op.n));
    case OpKind::kAllGather: {
      if (tp_size_ == 1) return Status::Ok();
      // Each rank holds [S, vocab / tp] at the front of the buffer; the result is [S, vocab]
      // with rank r's shard in columns [r * vocab / tp, (r + 1) * vocab / tp).
      const int64_t local = dims_.vocab, rows = Rows(op.out);
      gather_scratch_.resize(static_cast<size_t>(tp_size_ * rows * local));
      CB_RETURN_IF_ERROR(cfg_.tp_comm->AllGather(out.f32(), static_cast<size_t>(rows * local),
                                                 gather_scratch_.data()));
      for (int r = 0; r < tp_size_; ++r) {
        for (int64_t row = 0; row < rows; ++row) {
          std::memcpy(out.f32() + row * op.n + r * local,
                      gather_scratch_.data() + (r * rows + row) * local, local * sizeof(float));
        }
      }
      return Status::Ok();
    }
    case OpKind::kSelectLast: {
      int64_t row = 0;
      for (int64_t s = 0; s < seqs_; ++s) {
        row += io.seqs[s].new_tokens;
        std::memcpy(out.f32() + s * op.n, in.f32() + (row - 1) * op.n, op.n * sizeof(float));
      }
      return Status::Ok();
    }
    case OpKind::kSampleGreedy: {
      io.next_tokens.resize(seqs_);
      for (int64_t s = 0; s < seqs_; ++s) {
        io.next_tokens[s] = ArgMax(in.f32() + s * op.n, op.n);
        out.i32()[s] = io.next_tokens[s];
      }
      if (io.want_logits) io.logits.assign(in.f32(), in.f32() + seqs_ * op.n);
      return Status::Ok();
    }
    case OpKind::kRouter: {
      float* logits = router_logits_.as<float>();
      CB_RETURN_IF_ERROR(
          matmul_.Run(*plan.matrix, in.mem.data(), in.dtype, op.k, tokens_, logits, op.n));
      RouteTokens(moe_, zipf_s_, logits, tokens_, plan.gain[0], out.f32());
      CountExpertLoad(out.f32(), tokens_, dims_.top_k, dims_.experts, op.layer, layers_,
                      &io.expert_load);
      if (io.record_routes) {
        if (static_cast<int>(io.routes.size()) < layers_) io.routes.resize(layers_);
        io.routes[op.layer].assign(out.f32(), out.f32() + tokens_ * 2 * dims_.top_k);
      }
      return Status::Ok();
    }
    case OpKind::kMoeExperts:
      return RunMoeExperts(op, plan);
    case OpKind::kMlaKvNorm:
      LatentNorm(in.f32(), tokens_, in.width, op.n, plan.gain[0], eps_);
      return Status::Ok();
    case OpKind::kMlaRope:
      MlaRope(bufs_[static_cast<int>(Buf::kQ)].f32(), bufs_[static_cast<int>(Buf::kKva)].f32(),
              tokens_, dims_.heads, dims_.QkHeadDim(), dims_.qk_rope, dims_.kv_lora,
              positions_.data(), mla_rope_.as<float>());
      return Status::Ok();
    case OpKind::kMlaAttention: {
      for (const SeqStep& s : io.seqs) {
        const int64_t valid = latent_.Valid(op.layer, s.slot);
        if (valid < s.past_len) {
          return Status::InvalidInput("slot " + std::to_string(s.slot) + " holds " +
                                      std::to_string(valid) +
                                      " cached positions, the step says "
                                      "past_len " +
                                      std::to_string(s.past_len));
        }
      }
      MlaAttention(in.f32(), bufs_[static_cast<int>(Buf::kKva)].f32(), tokens_, row_pos_.data(),
                   {dims_.heads, dims_.qk_nope, dims_.qk_rope, dims_.head_dim, dims_.kv_lora},
                   plan.kv_b, latent_, op.layer, out.view(), mla_scratch_.as<float>(),
                   mla_scratch_per_thread_);
      for (const SeqStep& s : io.seqs) latent_.Valid(op.layer, s.slot) = s.past_len + s.new_tokens;
      return Status::Ok();
    }
  }
  return Status::Internal("unknown op kind");
}

// ---------------------------------------------------------------------------------------------
// Mixture of experts and MLA

Status CpuSession::PlanMoeMla(const OpStream& s, const WeightSource& weights) {
  auto dense = [&](const std::string& name) -> const float* {
    auto it = dense_f32_.find(name);
    if (it == dense_f32_.end()) {
      const WeightDesc& d = *s.FindWeight(name);
      std::vector<float> v(static_cast<size_t>(d.Elements()));
      weights.FillRows(d, 0, d.rows, v.data());
      for (float& x : v) x = RoundTo(cfg_.dtype, x);
      it = dense_f32_.emplace(name, std::move(v)).first;
    }
    return it->second.data();
  };
  for (size_t i = 0; i < s.ops.size(); ++i) {
    const Op& op = s.ops[i];
    if (op.kind == OpKind::kRouter) {
      auto m = std::make_unique<PackedMatrix>();
      CB_RETURN_IF_ERROR(PackWeights({s.FindWeight(op.weights[0])}, weights, cfg_.dtype, m.get()));
      CB_RETURN_IF_ERROR(matmul_.CheckLayout(*m));
      plans_[i].matrix = m.get();
      matrices_.push_back(std::move(m));
      if (op.weights.size() > 1) plans_[i].gain[0] = dense(op.weights[1]);
    } else if (op.kind == OpKind::kMoeExperts) {
      auto ew = std::make_unique<ExpertWeights>();
      const WeightDesc& gu = *s.FindWeight(op.weights[0]);
      const WeightDesc& dn = *s.FindWeight(op.weights[1]);
      const int64_t gu_rows = 2 * dims_.expert_ffn, dn_rows = dims_.hidden;
      if (gu.rows != dims_.local_experts * gu_rows || gu.cols != dims_.hidden ||
          dn.rows != dims_.local_experts * dn_rows || dn.cols != dims_.expert_ffn) {
        return Status::InvalidInput(OpName(op) + ": expert weights do not match the dimensions");
      }
      for (int64_t e = 0; e < dims_.local_experts; ++e) {
        // One expert's rows of the stacked tensors: same generator key, so the same values.
        WeightDesc g = gu, d = dn;
        g.key = d.key = "";
        g.key = gu.key.empty() ? gu.name : gu.key;
        d.key = dn.key.empty() ? dn.name : dn.key;
        g.rows = gu_rows;
        g.row_offset = gu.row_offset + e * gu_rows;
        d.rows = dn_rows;
        d.row_offset = dn.row_offset + e * dn_rows;
        auto mg = std::make_unique<PackedMatrix>(), md = std::make_unique<PackedMatrix>();
        CB_RETURN_IF_ERROR(PackWeights({&g}, weights, cfg_.dtype, mg.get()));
        CB_RETURN_IF_ERROR(PackWeights({&d}, weights, cfg_.dtype, md.get()));
        if (e == 0) {
          CB_RETURN_IF_ERROR(matmul_.CheckLayout(*mg));
          CB_RETURN_IF_ERROR(matmul_.CheckLayout(*md));
        }
        ew->gate_up.push_back(std::move(mg));
        ew->down.push_back(std::move(md));
      }
      plans_[i].experts = ew.get();
      experts_.push_back(std::move(ew));
    } else if (op.kind == OpKind::kMlaKvNorm) {
      plans_[i].gain[0] = dense(op.weights[0]);
    } else if (op.kind == OpKind::kMlaAttention) {
      plans_[i].kv_b = dense(op.weights[0]);
    }
  }
  return Status::Ok();
}

Status CpuSession::AllocateMoeMla(const OpStream& s) {
  if (dims_.experts > 0) {
    CB_RETURN_IF_ERROR(router_logits_.Allocate(
        static_cast<size_t>(cfg_.max_step_tokens * dims_.experts) * sizeof(float),
        "router logits"));
    // An expert gets at most every token of a step once; rows are padded to 16 so oneDNN
    // sees few distinct shapes.
    moe_rows_ = (cfg_.max_step_tokens + 15) / 16 * 16;
    const int64_t k_pad_h = (dims_.hidden + 31) / 32 * 32;
    const size_t dt = DTypeBytes(cfg_.dtype);
    CB_RETURN_IF_ERROR(moe_in_.Allocate(moe_rows_ * k_pad_h * dt, "expert input rows"));
    CB_RETURN_IF_ERROR(
        moe_gu_.Allocate(moe_rows_ * 2 * dims_.expert_ffn * sizeof(float), "expert gate/up rows"));
    CB_RETURN_IF_ERROR(moe_act_.Allocate(moe_rows_ * dims_.expert_ffn * dt, "expert act rows"));
    CB_RETURN_IF_ERROR(
        moe_out_.Allocate(moe_rows_ * dims_.hidden * sizeof(float), "expert output rows"));
    const int64_t k_pad_f = (dims_.expert_ffn + 31) / 32 * 32;
    CB_RETURN_IF_ERROR(matmul_.Reserve(kSkinnyMaxRows, std::max(k_pad_h, k_pad_f), cfg_.dtype));
  }
  if (dims_.Mla()) {
    CB_RETURN_IF_ERROR(latent_.Allocate(std::max(layers_, 1), cfg_.max_sequences, cfg_.max_context,
                                        dims_.kv_lora + dims_.qk_rope, cfg_.dtype));
    const int64_t rope = dims_.qk_rope, half = rope / 2;
    CB_RETURN_IF_ERROR(mla_rope_.Allocate(
        static_cast<size_t>(cfg_.max_context * rope) * sizeof(float), "the MLA rotary table"));
    for (int64_t p = 0; p < cfg_.max_context; ++p) {
      float* row = mla_rope_.as<float>() + p * rope;
      for (int64_t i = 0; i < half; ++i) {
        const double angle = static_cast<double>(p) * std::pow(s.model.rope_theta, -2.0 * i / rope);
        row[i] = static_cast<float>(std::cos(angle));
        row[half + i] = static_cast<float>(std::sin(angle));
      }
    }
    mla_scratch_per_thread_ = (2 * dims_.kv_lora + cfg_.max_context + 15) / 16 * 16;
    CB_RETURN_IF_ERROR(mla_scratch_.Allocate(
        static_cast<size_t>(omp_get_max_threads() * mla_scratch_per_thread_) * sizeof(float),
        "MLA attention scratch"));
  }
  return Status::Ok();
}

Status CpuSession::EnsureMoeRows(int64_t rows) {
  if (rows <= moe_rows_) return Status::Ok();
  moe_rows_ = (rows + 15) / 16 * 16;
  const int64_t k_pad_h = (dims_.hidden + 31) / 32 * 32;
  const size_t dt = DTypeBytes(cfg_.dtype);
  CB_RETURN_IF_ERROR(moe_in_.Allocate(moe_rows_ * k_pad_h * dt, "expert input rows"));
  CB_RETURN_IF_ERROR(
      moe_gu_.Allocate(moe_rows_ * 2 * dims_.expert_ffn * sizeof(float), "expert gate/up rows"));
  CB_RETURN_IF_ERROR(moe_act_.Allocate(moe_rows_ * dims_.expert_ffn * dt, "expert act rows"));
  return moe_out_.Allocate(moe_rows_ * dims_.hidden * sizeof(float), "expert output rows");
}

Status CpuSession::RunExpert(const ExpertWeights& w, int64_t e, int64_t rows) {
  // moe_in_ holds `rows` gathered rows (row stride k_pad); padding rows must be zero.
  const int64_t hidden = dims_.hidden, f = dims_.expert_ffn;
  const int64_t ld_in = w.gate_up[0]->k_pad;
  const int64_t padded = rows <= kSkinnyMaxRows ? rows : (rows + 15) / 16 * 16;
  const size_t dt = DTypeBytes(cfg_.dtype);
  char* x = static_cast<char*>(moe_in_.data());
  for (int64_t r = rows; r < padded; ++r) std::memset(x + r * ld_in * dt, 0, hidden * dt);
  CB_RETURN_IF_ERROR(
      matmul_.Run(*w.gate_up[e], x, cfg_.dtype, ld_in, padded, moe_gu_.as<float>(), 2 * f));
  SwiGlu(moe_gu_.as<float>(), {moe_act_.data(), cfg_.dtype}, padded, f);
  return matmul_.Run(*w.down[e], moe_act_.data(), cfg_.dtype, f, padded, moe_out_.as<float>(),
                     hidden);
}

Status CpuSession::RunMoeExperts(const Op& op, const OpPlan& plan) {
  if (ep_size_ > 1) return RunMoeExpertsEp(op, plan);
  const ActBuffer& in = bufs_[static_cast<int>(op.in)];
  const ActBuffer& out = bufs_[static_cast<int>(op.out)];
  const int64_t hidden = dims_.hidden;
  dispatch_.Build(bufs_[static_cast<int>(Buf::kRoute)].f32(), tokens_, dims_.top_k,
                  dims_.expert_begin, dims_.local_experts);
  std::memset(out.f32(), 0, static_cast<size_t>(tokens_ * hidden) * sizeof(float));
  const ExpertWeights& w = *plan.experts;
  const size_t dt = DTypeBytes(cfg_.dtype);
  const int64_t ld_in = w.gate_up[0]->k_pad;
  for (int64_t e = 0; e < dims_.local_experts; ++e) {
    const int64_t begin = dispatch_.offset[e], rows = dispatch_.offset[e + 1] - begin;
    if (rows == 0) continue;
    // Dispatch: gather this expert's rows.
    char* x = static_cast<char*>(moe_in_.data());
    const char* h = static_cast<const char*>(in.mem.data());
#pragma omp parallel for schedule(static) if (rows >= 64)
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(x + r * ld_in * dt, h + dispatch_.token[begin + r] * hidden * dt, hidden * dt);
    }
    // Grouped expert matmuls: gate/up, SwiGLU, down.
    CB_RETURN_IF_ERROR(RunExpert(w, e, rows));
    // Combine: weighted rows back in token order (a token meets an expert at most once).
    const float* y = moe_out_.as<float>();
#pragma omp parallel for schedule(static) if (rows >= 16)
    for (int64_t r = 0; r < rows; ++r) {
      float* o = out.f32() + dispatch_.token[begin + r] * hidden;
      const float wt = dispatch_.weight[begin + r];
#pragma omp simd
      for (int64_t c = 0; c < hidden; ++c) o[c] += wt * y[r * hidden + c];
    }
  }
  return Status::Ok();
}

Status CpuSession::RunMoeExpertsEp(const Op& op, const OpPlan& plan) {
  const ActBuffer& in = bufs_[static_cast<int>(op.in)];
  const ActBuffer& out = bufs_[static_cast<int>(op.out)];
  const int64_t hidden = dims_.hidden, k = dims_.top_k, per_rank = dims_.local_experts;
  const int64_t width = hidden + 1;  // [global expert id, h row as fp32]
  const float* route = bufs_[static_cast<int>(Buf::kRoute)].f32();
  const int ep = ep_size_;
  Communicator& comm = *cfg_.ep_comm;
  // 1. Dispatch: this rank's (token, expert) pairs grouped by the expert's rank.
  ep_counts_.assign(ep, 0);
  for (int64_t i = 0; i < tokens_ * k; ++i) {
    ++ep_counts_[static_cast<int64_t>(route[(i / k) * 2 * k + i % k]) / per_rank];
  }
  ep_offsets_.assign(ep, 0);
  for (int r = 1; r < ep; ++r) ep_offsets_[r] = ep_offsets_[r - 1] + ep_counts_[r - 1];
  ep_send_.resize(std::max<int64_t>(1, tokens_ * k * width));
  ep_pair_token_.resize(tokens_ * k);
  ep_pair_weight_.resize(tokens_ * k);
  std::vector<int> fill = ep_offsets_;
  for (int64_t t = 0; t < tokens_; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const float id = route[t * 2 * k + j];
      const int64_t slot = fill[static_cast<int64_t>(id) / per_rank]++;
      float* row = ep_send_.data() + slot * width;
      row[0] = id;
      for (int64_t c = 0; c < hidden; ++c) {
        row[1 + c] = in.dtype == DType::kBF16 ? Bf16ToFloat(in.mem.as<uint16_t>()[t * hidden + c])
                                              : in.f32()[t * hidden + c];
      }
      ep_pair_token_[slot] = static_cast<int32_t>(t);
      ep_pair_weight_[slot] = route[t * 2 * k + k + j];
    }
  }
  // 2. Row counts, then the rows (alltoallv).
  std::vector<float> counts_out(ep), counts_in(ep);
  std::vector<int> ones(ep, 1), iota(ep);
  for (int r = 0; r < ep; ++r) {
    counts_out[r] = static_cast<float>(ep_counts_[r]);
    iota[r] = r;
  }
  CB_RETURN_IF_ERROR(comm.AllToAllV(counts_out.data(), ones.data(), iota.data(), counts_in.data(),
                                    ones.data(), iota.data()));
  ep_rcounts_.assign(ep, 0);
  ep_roffsets_.assign(ep, 0);
  for (int r = 0; r < ep; ++r) ep_rcounts_[r] = static_cast<int>(counts_in[r]);
  for (int r = 1; r < ep; ++r) ep_roffsets_[r] = ep_roffsets_[r - 1] + ep_rcounts_[r - 1];
  const int64_t received = ep_roffsets_[ep - 1] + ep_rcounts_[ep - 1];
  std::vector<int> sc(ep), so(ep), rc(ep), ro(ep);
  for (int r = 0; r < ep; ++r) {
    sc[r] = static_cast<int>(ep_counts_[r] * width);
    so[r] = static_cast<int>(ep_offsets_[r] * width);
    rc[r] = static_cast<int>(ep_rcounts_[r] * width);
    ro[r] = static_cast<int>(ep_roffsets_[r] * width);
  }
  ep_recv_.resize(std::max<int64_t>(1, received * width));
  CB_RETURN_IF_ERROR(
      comm.AllToAllV(ep_send_.data(), sc.data(), so.data(), ep_recv_.data(), rc.data(), ro.data()));
  // 3. The local experts on every row they received, results in the received order.
  ep_result_.resize(std::max<int64_t>(1, received * hidden));
  CB_RETURN_IF_ERROR(EnsureMoeRows(received));
  const ExpertWeights& w = *plan.experts;
  const int64_t ld_in = w.gate_up[0]->k_pad;
  std::vector<int64_t> rows_of;
  for (int64_t e = 0; e < per_rank; ++e) {
    rows_of.clear();
    for (int64_t i = 0; i < received; ++i) {
      if (static_cast<int64_t>(ep_recv_[i * width]) - dims_.expert_begin == e) rows_of.push_back(i);
    }
    if (rows_of.empty()) continue;
    const int64_t rows = static_cast<int64_t>(rows_of.size());
    for (int64_t r = 0; r < rows; ++r) {
      const float* src = ep_recv_.data() + rows_of[r] * width + 1;
      if (cfg_.dtype == DType::kBF16) {
        uint16_t* dst = moe_in_.as<uint16_t>() + r * ld_in;
        for (int64_t c = 0; c < hidden; ++c) dst[c] = FloatToBf16(src[c]);
      } else {
        std::memcpy(moe_in_.as<float>() + r * ld_in, src, hidden * sizeof(float));
      }
    }
    CB_RETURN_IF_ERROR(RunExpert(w, e, rows));
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(ep_result_.data() + rows_of[r] * hidden, moe_out_.as<float>() + r * hidden,
                  hidden * sizeof(float));
    }
  }
  // 4. Results back to the rows' ranks (the reverse alltoallv), then combine.
  for (int r = 0; r < ep; ++r) {
    sc[r] = static_cast<int>(ep_rcounts_[r] * hidden);
    so[r] = static_cast<int>(ep_roffsets_[r] * hidden);
    rc[r] = static_cast<int>(ep_counts_[r] * hidden);
    ro[r] = static_cast<int>(ep_offsets_[r] * hidden);
  }
  ep_back_.resize(std::max<int64_t>(1, tokens_ * k * hidden));
  CB_RETURN_IF_ERROR(comm.AllToAllV(ep_result_.data(), sc.data(), so.data(), ep_back_.data(),
                                    rc.data(), ro.data()));
  std::memset(out.f32(), 0, static_cast<size_t>(tokens_ * hidden) * sizeof(float));
  for (int64_t i = 0; i < tokens_ * k; ++i) {
    float* o = out.f32() + ep_pair_token_[i] * hidden;
    const float wt = ep_pair_weight_[i];
    const float* y = ep_back_.data() + i * hidden;
#pragma omp simd
    for (int64_t c = 0; c < hidden; ++c) o[c] += wt * y[c];
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Buffer access for tests

Status CpuSession::ReadBuffer(Buf buf, int64_t rows, std::vector<float>* out) const {
  if (!loaded_) return Status::InvalidInput("ReadBuffer before Load");
  if (buf == Buf::kNone) return Status::InvalidInput("no such buffer");
  const ActBuffer& a = bufs_[static_cast<int>(buf)];
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
