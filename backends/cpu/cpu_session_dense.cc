// Dense weights (packed matmuls, embeddings, norm gains), activation buffers, the KV cache
// and the rotary table.
#include <omp.h>

#include <string>

#include "backends/cpu/cpu_session.h"
#include "backends/cpu/skinny_gemm.h"
#include "workloads/quant.h"

namespace cb::cpu {
namespace {

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
      Progress(m->data.size());
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
      // A quantised LM head is no embedding table: the embedding stays in bf16.
      for (size_t j = 0; j < s.ops.size() && table->packed == nullptr && !IsQuantized(cfg_.dtype);
           ++j) {
        const Op& m = s.ops[j];
        if (m.kind == OpKind::kMatMul && m.weights.size() == 1 &&
            WeightIdentity(*s.FindWeight(m.weights[0])) == WeightIdentity(d)) {
          table->packed = plans_[j].matrix;  // tied: read rows of the LM head's packed copy
        }
      }
      if (table->packed == nullptr) {
        table->dtype = HighPrecisionOf(cfg_.dtype);
        CB_RETURN_IF_ERROR(FillPlain(d, weights, table->dtype, &table->plain));
        Progress(table->plain.size());
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
          for (float& v : g) v = RoundTo(HighPrecisionOf(cfg_.dtype), v);
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
    if (op.kind != OpKind::kMatMul && op.kind != OpKind::kRouter) continue;
    const PackedMatrix& m = *plans_[i].matrix;
    int64_t rows = 0;
    if (BufDType(op.in) != m.dtype) {
      rows = bufs_[static_cast<int>(op.in)].rows;
    } else if (m.k != m.k_pad) {
      rows = std::min(kSkinnyMaxRows, bufs_[static_cast<int>(op.in)].rows);
    }
    if (rows > 0) CB_RETURN_IF_ERROR(matmul_.Reserve(rows, m.k_pad, m.dtype));
  }

  row_pos_.resize(cfg_.max_step_tokens);
  positions_.resize(cfg_.max_step_tokens);
  if (dims_.Mla()) return Status::Ok();  // the latent cache replaces K and V (PlanMla)
  const AttentionShape shape{dims_.heads, dims_.kv_heads, dims_.head_dim};
  CB_RETURN_IF_ERROR(kv_.Allocate(std::max(layers_, 1), cfg_.max_sequences, dims_.kv_heads,
                                  cfg_.max_context, dims_.head_dim,
                                  cfg_.kv_dtype.value_or(DefaultKvDType(cfg_.dtype))));
  CB_RETURN_IF_ERROR(attn_scratch_.Allocate(omp_get_max_threads(), shape, cfg_.max_context));

  CB_RETURN_IF_ERROR(
      MakeRopeTable(cfg_.max_context, dims_.head_dim, s.model.rope_theta, &rope_, "rotary table"));
  return Status::Ok();
}

}  // namespace cb::cpu
