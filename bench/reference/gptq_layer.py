#!/usr/bin/python3
"""Times GPTQ on one Qwen3 decoder layer the way the original IST-DASLab/gptq code does it
(llama.py's sequential loop with true-sequential groups, gptq.py's add_batch and fasterquant,
quant.py's min-max quantizer; docs/methods.md#gptq), in python3-torch on the CPU, fp32. Written
from the published algorithm for bench_quant_layer --reference; shares no code with bitsweep.

For each true-sequential group (q/k/v, o, up/gate, down) the reference runs the whole layer
over every calibration sample with forward hooks feeding each linear's Hessian, then
quantizes the group's linears; a last forward gives the next layer's inputs: five forwards.

usage: gptq_layer.py --hidden H --intermediate I --heads N --kv-heads K --head-dim D
                     --nsamples S --seqlen L --wbits B --group G [--act-order] [--threads T]
Prints one line "seconds <float>": the layer's quantization, from its first forward to the
last. Exits with status 77 when torch is missing.
"""
import argparse
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
except ImportError:
    sys.exit(77)


class RMSNorm(nn.Module):
    def __init__(self, n, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Qwen3Layer(nn.Module):
    def __init__(self, a):
        super().__init__()
        h, d = a.hidden, a.head_dim
        self.heads, self.kv_heads, self.head_dim = a.heads, a.kv_heads, d
        self.input_layernorm = RMSNorm(h)
        self.post_attention_layernorm = RMSNorm(h)
        self.q_norm, self.k_norm = RMSNorm(d), RMSNorm(d)
        self.q_proj = nn.Linear(h, a.heads * d, bias=False)
        self.k_proj = nn.Linear(h, a.kv_heads * d, bias=False)
        self.v_proj = nn.Linear(h, a.kv_heads * d, bias=False)
        self.o_proj = nn.Linear(a.heads * d, h, bias=False)
        self.gate_proj = nn.Linear(h, a.intermediate, bias=False)
        self.up_proj = nn.Linear(h, a.intermediate, bias=False)
        self.down_proj = nn.Linear(a.intermediate, h, bias=False)

    def forward(self, x, cos, sin, mask):
        t = x.shape[1]
        r = x
        x = self.input_layernorm(x)
        q = self.q_norm(self.q_proj(x).view(1, t, self.heads, self.head_dim)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(1, t, self.kv_heads, self.head_dim)).transpose(1, 2)
        v = self.v_proj(x).view(1, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.heads // self.kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim) + mask
        p = torch.softmax(s, dim=-1)
        o = torch.matmul(p, v).transpose(1, 2).reshape(1, t, -1)
        x = r + self.o_proj(o)
        r = x
        x = self.post_attention_layernorm(x)
        x = self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))
        return r + x


class MinMaxQuantizer:
    """quant.py's Quantizer for weights: per output channel, asymmetric."""

    def __init__(self, bits):
        self.maxq = torch.tensor(2 ** bits - 1)

    def find_params(self, x):
        zero = torch.zeros(x.shape[0])
        xmin = torch.minimum(x.min(1)[0], zero)
        xmax = torch.maximum(x.max(1)[0], zero)
        both = (xmin == 0) & (xmax == 0)
        xmin[both], xmax[both] = -1, +1
        self.scale = ((xmax - xmin) / self.maxq).unsqueeze(1)
        self.zero = torch.round(-xmin / self.scale.flatten()).unsqueeze(1)

    def quantize(self, x):
        q = torch.clamp(torch.round(x / self.scale) + self.zero, 0, self.maxq)
        return self.scale * (q - self.zero)


class Gptq:
    """gptq.py's GPTQ object for one nn.Linear."""

    def __init__(self, layer, bits):
        self.layer = layer
        self.columns = layer.weight.shape[1]
        self.H = torch.zeros((self.columns, self.columns))
        self.nsamples = 0
        self.quantizer = MinMaxQuantizer(bits)

    def add_batch(self, inp):
        inp = inp.reshape(-1, inp.shape[-1]).t()
        self.H *= self.nsamples / (self.nsamples + 1)
        self.nsamples += 1
        inp = math.sqrt(2 / self.nsamples) * inp.float()
        self.H += inp.matmul(inp.t())

    def fasterquant(self, blocksize=128, percdamp=0.01, groupsize=-1, actorder=False):
        W = self.layer.weight.data.clone().float()
        self.quantizer.find_params(W)
        H = self.H
        del self.H
        dead = torch.diag(H) == 0
        H[dead, dead] = 1
        W[:, dead] = 0
        if actorder:
            perm = torch.argsort(torch.diag(H), descending=True)
            W = W[:, perm]
            H = H[perm][:, perm]
        Q = torch.zeros_like(W)
        damp = percdamp * torch.mean(torch.diag(H))
        diag = torch.arange(self.columns)
        H[diag, diag] += damp
        H = torch.linalg.cholesky(H)
        H = torch.cholesky_inverse(H)
        Hinv = torch.linalg.cholesky(H, upper=True)
        for i1 in range(0, self.columns, blocksize):
            i2 = min(i1 + blocksize, self.columns)
            W1 = W[:, i1:i2].clone()
            Q1 = torch.zeros_like(W1)
            Err1 = torch.zeros_like(W1)
            Hinv1 = Hinv[i1:i2, i1:i2]
            for i in range(i2 - i1):
                w = W1[:, i]
                d = Hinv1[i, i]
                if groupsize != -1 and (i1 + i) % groupsize == 0:
                    self.quantizer.find_params(W[:, (i1 + i):(i1 + i + groupsize)])
                q = self.quantizer.quantize(w.unsqueeze(1)).flatten()
                Q1[:, i] = q
                err1 = (w - q) / d
                W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
                Err1[:, i] = err1
            Q[:, i1:i2] = Q1
            W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
        if actorder:
            Q = Q[:, torch.argsort(perm)]
        self.layer.weight.data = Q


def main():
    p = argparse.ArgumentParser()
    for name in ("hidden", "intermediate", "heads", "kv-heads", "head-dim", "nsamples", "seqlen",
                 "wbits", "group"):
        p.add_argument("--" + name, type=int, required=True)
    p.add_argument("--act-order", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with torch.no_grad():
        layer = Qwen3Layer(a)
        for lin in (layer.q_proj, layer.k_proj, layer.v_proj, layer.o_proj, layer.gate_proj,
                    layer.up_proj, layer.down_proj):
            lin.weight.normal_(0, 0.02)
        inps = [torch.randn(1, a.seqlen, a.hidden) for _ in range(a.nsamples)]
        inv = 1.0 / (1e6 ** (torch.arange(0, a.head_dim, 2).float() / a.head_dim))
        ang = torch.outer(torch.arange(a.seqlen).float(), inv)
        ang = torch.cat((ang, ang), dim=-1)
        cos, sin = ang.cos()[None, None], ang.sin()[None, None]
        mask = torch.full((a.seqlen, a.seqlen), float("-inf")).triu(1)[None, None]
        sequential = [["k_proj", "v_proj", "q_proj"], ["o_proj"], ["up_proj", "gate_proj"],
                      ["down_proj"]]
        t0 = time.perf_counter()
        for names in sequential:
            gptq = {n: Gptq(getattr(layer, n), a.wbits) for n in names}
            hooks = [getattr(layer, n).register_forward_hook(
                lambda _m, inp, _out, n=n: gptq[n].add_batch(inp[0].data)) for n in names]
            for x in inps:
                layer(x, cos, sin, mask)
            for h in hooks:
                h.remove()
            for n in names:
                gptq[n].fasterquant(groupsize=a.group, actorder=a.act_order)
            del gptq
        outs = [layer(x, cos, sin, mask) for x in inps]
        seconds = time.perf_counter() - t0
    del outs
    print("seconds %.3f" % seconds)


if __name__ == "__main__":
    main()
