#!/usr/bin/env python3
"""PyTorch baseline for ci/gpu: the same Llama shape as cuda_bench, random weights, same dtype,
same batch / prompt / generation lengths, greedy decoding with a static KV cache.

Plain PyTorch (no transformers): fused QKV and gate/up Linear weights like the op stream,
RMSNorm, half-split RoPE, F.scaled_dot_product_attention (flash / memory-efficient kernels;
GQA by repeating KV heads), SwiGLU, argmax. Decode steps are timed eagerly (no torch.compile,
no CUDA graphs): this is "PyTorch as most people run it"; pass --compile to use
torch.compile(mode="reduce-overhead") for decode instead.

Prints one JSON object (also to --out FILE) with the same keys cuda_bench writes: prefill,
decode_batch1, decode_batch -> tokens_per_s. Unmeasured where written: no GPU was available.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_model(name):
    path = name if os.path.isfile(name) else os.path.join(TOP, "workloads", "models", name + ".json")
    with open(path) as f:
        m = json.load(f)
    m.setdefault("head_dim", m["hidden_size"] // m["num_heads"])
    m.setdefault("rope_theta", 10000.0)
    m.setdefault("norm_eps", 1e-5)
    m.setdefault("qk_norm", False)
    return m


class Llama(torch.nn.Module):
    def __init__(self, m, layers, dtype, device, max_batch, max_context):
        super().__init__()
        h, hd = m["hidden_size"], m["head_dim"]
        self.h, self.hd = h, hd
        self.nh, self.nkv = m["num_heads"], m["num_kv_heads"]
        self.ffn, self.vocab = m["ffn_size"], m["vocab_size"]
        self.eps = m["norm_eps"]
        self.qk_norm = m["qk_norm"]
        kw = dict(dtype=dtype, device=device)

        def w(rows, cols):
            bound = math.sqrt(3.0 / cols)
            return torch.empty(rows, cols, **kw).uniform_(-bound, bound)

        self.embed = torch.empty(self.vocab, h, **kw).uniform_(-1, 1)
        self.layers = []
        for _ in range(layers):
            self.layers.append(dict(
                attn_norm=torch.ones(h, **kw),
                wqkv=w((self.nh + 2 * self.nkv) * hd, h),
                wo=w(h, self.nh * hd),
                mlp_norm=torch.ones(h, **kw),
                w_gate_up=w(2 * self.ffn, h),
                w_down=w(h, self.ffn),
                q_norm=torch.ones(hd, **kw),
                k_norm=torch.ones(hd, **kw),
                k_cache=torch.zeros(max_batch, self.nkv, max_context, hd, **kw),
                v_cache=torch.zeros(max_batch, self.nkv, max_context, hd, **kw),
            ))
        self.final_norm = torch.ones(h, **kw)
        self.lm_head = w(self.vocab, h)
        inv = m["rope_theta"] ** (-torch.arange(0, hd // 2, device=device, dtype=torch.float64) * 2 / hd)
        ang = torch.arange(max_context, device=device, dtype=torch.float64)[:, None] * inv[None, :]
        self.cos = ang.cos().to(torch.float32)
        self.sin = ang.sin().to(torch.float32)

    def rms(self, x, g):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * g

    def rope(self, x, pos):  # x [B, H, T, hd], pos [T]
        half = self.hd // 2
        c, s = self.cos[pos][None, None], self.sin[pos][None, None]
        x1, x2 = x[..., :half].float(), x[..., half:].float()
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1).to(x.dtype)

    @torch.no_grad()
    def forward(self, tokens, past):  # tokens [B, T]; all sequences at the same `past`
        B, T = tokens.shape
        pos = torch.arange(past, past + T, device=tokens.device)
        x = self.embed[tokens]
        for L in self.layers:
            hN = self.rms(x, L["attn_norm"])
            qkv = hN @ L["wqkv"].t()
            q, k, v = qkv.split([self.nh * self.hd, self.nkv * self.hd, self.nkv * self.hd], -1)
            q = q.view(B, T, self.nh, self.hd).transpose(1, 2)
            k = k.view(B, T, self.nkv, self.hd).transpose(1, 2)
            v = v.view(B, T, self.nkv, self.hd).transpose(1, 2)
            if self.qk_norm:
                q, k = self.rms(q, L["q_norm"]), self.rms(k, L["k_norm"])
            q, k = self.rope(q, pos), self.rope(k, pos)
            L["k_cache"][:B, :, past:past + T] = k
            L["v_cache"][:B, :, past:past + T] = v
            kc = L["k_cache"][:B, :, :past + T]
            vc = L["v_cache"][:B, :, :past + T]
            rep = self.nh // self.nkv
            kc = kc.repeat_interleave(rep, dim=1)
            vc = vc.repeat_interleave(rep, dim=1)
            if T == 1:
                a = F.scaled_dot_product_attention(q, kc, vc)
            elif past == 0:
                a = F.scaled_dot_product_attention(q, kc, vc, is_causal=True)
            else:
                mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
                a = F.scaled_dot_product_attention(q, kc, vc, attn_mask=mask)
            x = x + a.transpose(1, 2).reshape(B, T, self.nh * self.hd) @ L["wo"].t()
            hN = self.rms(x, L["mlp_norm"])
            gate, up = (hN @ L["w_gate_up"].t()).split([self.ffn, self.ffn], -1)
            x = x + (F.silu(gate) * up) @ L["w_down"].t()
        last = self.rms(x[:, -1], self.final_norm)
        logits = last.float() @ self.lm_head.float().t() if x.dtype == torch.float32 else (last @ self.lm_head.t()).float()
        return logits.argmax(-1)


def timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    r = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0, r


def decode(model, step, batch, past, gen):
    tok = torch.ones(batch, 1, dtype=torch.long, device="cuda")
    times = []
    for k in range(gen):
        t, nxt = timed(lambda: step(tok, past + k))
        tok = nxt[:, None]
        if k >= 2:
            times.append(t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-3.1-8b")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    ap.add_argument("--prompt", type=int, default=2048)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batch-prompt", type=int, default=128)
    ap.add_argument("--layers", type=int, default=0)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_baseline: no CUDA device visible to PyTorch", file=sys.stderr)
        return 1
    if a.gen < 4:
        print("torch_baseline: --gen must be at least 4", file=sys.stderr)
        return 2
    m = load_model(a.model)
    layers = a.layers or m["num_layers"]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[a.dtype]
    torch.manual_seed(1)
    ctx = max(a.prompt, a.batch_prompt) + a.gen
    model = Llama(m, layers, dtype, "cuda", max(1, a.batch), ctx)
    step = torch.compile(model.forward, mode="reduce-overhead") if a.compile else model.forward

    prompt = torch.randint(0, m["vocab_size"], (1, a.prompt), device="cuda")
    times = [timed(lambda: model.forward(prompt, 0))[0] for _ in range(4)][1:]
    prefill_s = statistics.median(times)
    d1 = decode(model, step, 1, a.prompt, a.gen)
    bprompt = torch.randint(0, m["vocab_size"], (a.batch, a.batch_prompt), device="cuda")
    model.forward(bprompt, 0)
    dn = decode(model, step, a.batch, a.batch_prompt, a.gen)
    r = {
        "device": torch.cuda.get_device_name(), "torch": torch.__version__, "model": m["name"],
        "layers": layers, "dtype": a.dtype, "compiled_decode": a.compile,
        "how": "measured: wall time of synchronised PyTorch steps, random weights",
        "prefill": {"prompt": a.prompt, "seconds": prefill_s, "tokens_per_s": a.prompt / prefill_s},
        "decode_batch1": {"past": a.prompt, "step_seconds": d1, "tokens_per_s": 1 / d1},
        "decode_batch": {"batch": a.batch, "past": a.batch_prompt, "step_seconds": dn,
                         "tokens_per_s": a.batch / dn},
    }
    text = json.dumps(r, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
