#include "harness/offline_work.h"

namespace cb {
namespace {

/// Weight bytes of the routed experts in one step of the whole model (extrapolated like
/// ExtrapolatedCost).
double ExpertWeightBytes(const OpStream& stream, const StepIO& io, DType dtype) {
  double bytes = 0;
  for (const Op& op : stream.ops) {
    if (op.kind != OpKind::kMoeExperts) continue;
    bytes += CostOfOp(stream, op, io, dtype).weight_bytes * stream.plan.Scale(op.layer);
  }
  return bytes;
}

/// Replaces the experts' weight reads that `cost` counted replica by replica (each replica's
/// tokens against every expert) with one read for the whole batch's step `whole`.
void ShareExpertReads(const OpStream& stream, const StepIO& whole, const WorkloadSpec& w, int dp,
                      OpCost* cost) {
  double per_replica = 0;
  for (int d = 0; d < dp; ++d) {
    StepIO part;
    const int64_t first = FirstSequence(w.batch, dp, d), count = LocalBatch(w.batch, dp, d);
    part.seqs.assign(whole.seqs.begin() + first, whole.seqs.begin() + first + count);
    per_replica += ExpertWeightBytes(stream, part, w.dtype);
  }
  const double shared = ExpertWeightBytes(stream, whole, w.dtype);
  cost->weight_bytes += shared - per_replica;
  cost->bytes += shared - per_replica;
}

}  // namespace

Segments SplitByLayer(const OpStream& s) {
  Segments seg;
  for (int l = 0; l < s.layers; ++l) {
    const auto [b, e] = s.LayerRange(l);
    seg.layers.push_back({b, e});
  }
  seg.head = {0, seg.layers.empty() ? s.ops.size() : seg.layers.front().begin};
  seg.tail = {seg.layers.empty() ? s.ops.size() : seg.layers.back().end, s.ops.size()};
  return seg;
}

OpCost ExtrapolatedCost(const OpStream& stream, const StepIO& io, DType dtype, DType kv_dtype) {
  const Segments seg = SplitByLayer(stream);
  OpCost c = CostOfOps(stream, seg.head.begin, seg.head.end, io, dtype, kv_dtype);
  c += CostOfOps(stream, seg.tail.begin, seg.tail.end, io, dtype, kv_dtype);
  for (size_t i = 0; i < seg.layers.size(); ++i) {
    OpCost layer = CostOfOps(stream, seg.layers[i].begin, seg.layers[i].end, io, dtype, kv_dtype);
    const double scale = stream.plan.Scale(static_cast<int>(i));
    layer.flops *= scale;
    layer.bytes *= scale;
    layer.weight_bytes *= scale;
    layer.kv_bytes *= scale;
    c += layer;
  }
  return c;
}

StepIO PrefillIO(const WorkloadSpec& w, int64_t vocab, int64_t first, int64_t count) {
  StepIO io;
  for (int64_t s = 0; s < count; ++s) {
    io.seqs.push_back({s, 0, w.prompt_len});
    for (int64_t p = 0; p < w.prompt_len; ++p) {
      io.tokens.push_back(SyntheticToken(w.seed, first + s, p, vocab));
    }
  }
  return io;
}

void AdvanceToDecode(StepIO& io) {
  for (auto& s : io.seqs) {
    s.past_len += s.new_tokens;
    s.new_tokens = 1;
  }
  io.tokens.assign(io.next_tokens.begin(), io.next_tokens.end());
}

void JobWork(const WorkloadSpec& w, const OpStream& full, int64_t vocab, const ParallelContext& par,
             OpCost* prefill_cost, OpCost* decode_cost) {
  for (int d = 0; d < par.dp; ++d) {
    const int64_t count = LocalBatch(w.batch, par.dp, d);
    StepIO shape = PrefillIO(w, vocab, FirstSequence(w.batch, par.dp, d), count);
    *prefill_cost += ExtrapolatedCost(full, shape, w.dtype, w.KvDType());
    shape.next_tokens.assign(count, 0);
    for (int64_t g = 0; g < w.gen_len; ++g) {
      AdvanceToDecode(shape);
      *decode_cost += ExtrapolatedCost(full, shape, w.dtype, w.KvDType());
    }
  }
  if (par.ep > 1) {
    // Under expert parallelism the replicas share one set of experts: each expert's weights
    // are read once per step, by its rank, for the tokens of every replica.
    StepIO shape = PrefillIO(w, vocab, 0, w.batch);
    ShareExpertReads(full, shape, w, par.dp, prefill_cost);
    shape.next_tokens.assign(w.batch, 0);
    for (int64_t g = 0; g < w.gen_len; ++g) {
      AdvanceToDecode(shape);
      ShareExpertReads(full, shape, w, par.dp, decode_cost);
    }
  }
}

}  // namespace cb
