#include "backends/cuda/launch_plan.h"

#include <algorithm>
#include <array>

namespace cb::cuda {
namespace {

bool KernelDType(DType t) { return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16; }

int NextPow2(int64_t v) {
  int p = 1;
  while (p < v) p *= 2;
  return p;
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Appends one [first row, rows, slot, position] record per tile of at most `rows_per_tile`
/// rows of each sequence; with `heavy_first` the tiles that see the most keys come first.
int64_t AppendTiles(const std::vector<SeqStep>& seqs, int rows_per_tile, bool heavy_first,
                    std::vector<int32_t>* out) {
  std::vector<std::array<int32_t, 4>> tiles;
  int64_t row = 0;
  for (const SeqStep& s : seqs) {
    for (int64_t r0 = 0; r0 < s.new_tokens; r0 += rows_per_tile) {
      tiles.push_back({static_cast<int32_t>(row + r0),
                       static_cast<int32_t>(std::min<int64_t>(rows_per_tile, s.new_tokens - r0)),
                       static_cast<int32_t>(s.slot), static_cast<int32_t>(s.past_len + r0)});
    }
    row += s.new_tokens;
  }
  if (heavy_first) {
    std::stable_sort(tiles.begin(), tiles.end(),
                     [](const auto& a, const auto& b) { return a[3] + a[1] > b[3] + b[1]; });
  }
  for (const auto& t : tiles) out->insert(out->end(), t.begin(), t.end());
  return static_cast<int64_t>(tiles.size());
}

}  // namespace

AttentionTiling MakeAttentionTiling(int64_t heads, int64_t kv_heads) {
  AttentionTiling t;
  t.group = static_cast<int>(heads / kv_heads);
  t.heads_per_block = std::min(t.group, kAttnItems);
  t.head_chunks = (t.group + t.heads_per_block - 1) / t.heads_per_block;
  t.rows_per_tile = std::max(1, kAttnItems / t.heads_per_block);
  return t;
}

int ChooseAttentionSplits(int64_t blocks, int64_t max_len, int64_t rows, int sms,
                          int64_t min_keys) {
  if (rows > kAttnMaxSplitRows || blocks <= 0) return 1;
  const int64_t target = 2 * static_cast<int64_t>(std::max(sms, 1));
  if (blocks >= target) return 1;
  const int64_t by_blocks = CeilDiv(target, blocks);
  const int64_t by_len = CeilDiv(max_len, std::max<int64_t>(min_keys, 1));
  const int64_t s = std::min<int64_t>({by_blocks, by_len, kAttnMaxSplits});
  return static_cast<int>(std::max<int64_t>(1, s));
}

SkinnyPlan PlanSkinny(int64_t rows, int64_t n, int64_t k, int64_t in_ld, DType type,
                      Prologue prologue, int sms) {
  SkinnyPlan p;
  if (!KernelDType(type)) {
    p.why =
        "the skinny kernel runs fp32, bf16 and fp16 weights, not " + std::string(DTypeName(type));
    return p;
  }
  if (rows < 1 || rows > kSkinnyMaxRows) {
    p.why = std::to_string(rows) + " rows (the skinny kernel takes 1 to " +
            std::to_string(kSkinnyMaxRows) + ")";
    return p;
  }
  if (n < 1 || k < 1) {
    p.why = "empty matrix";
    return p;
  }
  const int64_t elem = static_cast<int64_t>(DTypeBytes(type));
  p.vec = static_cast<int>(16 / elem);
  const bool staged = prologue != Prologue::kNone;
  if (staged) {
    p.stage_ld = CeilDiv(k, p.vec) * p.vec;
    p.smem = static_cast<uint64_t>(rows * p.stage_ld * elem);
    if (p.smem > kSkinnyStageCap) {
      p.why = "the prologue's " + std::to_string(rows) + " input rows of " + std::to_string(k) +
              " take " + std::to_string(p.smem) + " bytes of shared memory, more than " +
              std::to_string(kSkinnyStageCap);
      return p;
    }
  } else if (in_ld < k) {
    p.why = "input rows narrower than k";
    return p;
  }
  p.vector = k % p.vec == 0 && (staged || in_ld % p.vec == 0);
  const int64_t groups = CeilDiv(n, kSkinnyColsPerBlock);
  // A staged prologue is computed once per block: fewer blocks that stride over the columns.
  const int64_t cap = staged ? 2 * static_cast<int64_t>(std::max(sms, 1)) : int64_t{1} << 30;
  p.blocks = static_cast<unsigned>(std::min(groups, cap));
  p.ok = true;
  return p;
}

DecodeAttnPlan PlanDecodeAttention(int64_t heads, int64_t kv_heads, int64_t head_dim, DType type) {
  DecodeAttnPlan p;
  if (!KernelDType(type)) {
    p.why = "no decode attention kernel for " + std::string(DTypeName(type));
    return p;
  }
  if (kv_heads < 1 || heads < kv_heads || heads % kv_heads != 0) {
    p.why = "query heads are not a multiple of KV heads";
    return p;
  }
  p.vec = static_cast<int>(16 / DTypeBytes(type));
  if (head_dim < 1 || head_dim > kAttnMaxHeadDim || head_dim % p.vec != 0) {
    p.why = "head_dim " + std::to_string(head_dim) + " is not a multiple of " +
            std::to_string(p.vec) + " up to " + std::to_string(kAttnMaxHeadDim);
    return p;
  }
  p.lanes_per_key = NextPow2(head_dim / p.vec);
  p.keys_per_warp = 32 / p.lanes_per_key;
  const int64_t group = heads / kv_heads;
  p.head_chunks = static_cast<int>(CeilDiv(group, kDecodeMaxHeads));
  p.heads_per_block = static_cast<int>(CeilDiv(group, p.head_chunks));  // balanced chunks
  p.max_heads = NextPow2(p.heads_per_block);
  p.smem = static_cast<uint64_t>(kDecodeWarps) * p.heads_per_block * (head_dim + 2) * 4;
  p.ok = true;
  return p;
}

bool FlashEligible(int64_t head_dim, DType type, std::string* why) {
  if (type != DType::kBF16 && type != DType::kF16) {
    if (why)
      *why =
          "the flash kernel runs bf16 and fp16 (tensor cores), not " + std::string(DTypeName(type));
    return false;
  }
  if (head_dim != 16 && head_dim != 32 && head_dim != 64 && head_dim != 128) {
    if (why)
      *why = "the flash kernel is built for head_dim 16, 32, 64 and 128, not " +
             std::to_string(head_dim);
    return false;
  }
  return true;
}

uint64_t FlashSmemBytes(int64_t head_dim) {
  // Q, K and V tiles in the session dtype, rows padded by 8 elements against bank conflicts.
  return static_cast<uint64_t>(kFlashRows + 2 * kFlashKeys) * (head_dim + 8) * 2;
}

void BuildStepMeta(const std::vector<SeqStep>& seqs, int rows_per_tile, StepMeta* m) {
  m->tokens = 0;
  m->max_len = 0;
  m->decode = true;
  m->row0.clear();
  for (const SeqStep& s : seqs) {
    m->row0.push_back(m->tokens);
    m->tokens += s.new_tokens;
    m->max_len = std::max(m->max_len, s.past_len + s.new_tokens);
    m->decode = m->decode && s.new_tokens == 1;
  }
  m->seqs = static_cast<int64_t>(seqs.size());
  m->pos = 0;
  m->slot = m->tokens;
  m->last = 2 * m->tokens;
  m->tiles = m->last + m->seqs;
  m->data.assign(static_cast<size_t>(m->tiles), 0);
  for (size_t si = 0; si < seqs.size(); ++si) {
    const SeqStep& s = seqs[si];
    for (int64_t j = 0; j < s.new_tokens; ++j) {
      const int64_t row = m->row0[si] + j;
      m->data[m->pos + row] = static_cast<int32_t>(s.past_len + j);
      m->data[m->slot + row] = static_cast<int32_t>(s.slot);
    }
    m->data[m->last + si] = static_cast<int32_t>(m->row0[si] + s.new_tokens - 1);
  }
  m->num_tiles = AppendTiles(seqs, std::max(rows_per_tile, 1), false, &m->data);
  m->flash = static_cast<int64_t>(m->data.size());
  m->num_flash = AppendTiles(seqs, kFlashRows, true, &m->data);
}

int64_t StepMetaCapacity(int64_t max_step_tokens, int64_t max_sequences) {
  // Positions and slots per row, a last row per sequence, two tile lists of at most a tile
  // per row each.
  return 10 * max_step_tokens + max_sequences;
}

}  // namespace cb::cuda
