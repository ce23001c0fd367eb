#!/usr/bin/python3
"""Independent reference of SmoothQuant as mit-han-lab/smoothquant runs it, on a Qwen3 model.

Written from upstream's semantics, not from bitsweep: calibration.py get_act_scales (forward
hooks on every nn.Linear of the FP model, per-channel max over tokens of |x|, kept in fp32),
smooth.py smooth_ln_fcs_llama_like / smooth_lm (input_layernorm -> q,k,v with q_proj's scales;
post_attention_layernorm -> gate,up with gate_proj's; MoE as Mixtral: [router] + every
expert's gate,up with the router's scales), fake_quant.py W8A8Linear (per-channel abs-max
weights at WBITS, per-token abs-max inputs at ABITS quantised IN PLACE, q/k/v outputs too when
QKV_OUT). The router stays an FP nn.Linear. The model is an HF-semantics Qwen3 / Qwen3-MoE
block in torch.nn modules, float32 throughout (upstream would run fp16 on a GPU).

usage: smoothquant_reference.py MODEL_DIR CALIB_JSON EVAL_JSON ALPHA WBITS ABITS QKV_OUT OUT_BIN
  CALIB_JSON, EVAL_JSON: [[id, ...], ...] (rows of equal length)
  OUT_BIN: float64, little-endian, C order: logits [rows, T, vocab] with smoothing, then the
           same without smoothing (the study's released code), then the FP logits.
"""
import copy
import json
import os
import sys
from functools import partial

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qwen3_reference import load  # noqa: E402  (safetensors reader only)


# ---- fake_quant.py ---------------------------------------------------------------------------
@torch.no_grad()
def quantize_weight_per_channel_absmax(w, n_bits):
    scales = w.abs().max(dim=-1, keepdim=True)[0]
    q_max = 2 ** (n_bits - 1) - 1
    scales.clamp_(min=1e-5).div_(q_max)
    w.div_(scales).round_().mul_(scales)
    return w


@torch.no_grad()
def quantize_activation_per_token_absmax(t, n_bits):
    scales = t.abs().max(dim=-1, keepdim=True)[0]
    q_max = 2 ** (n_bits - 1) - 1
    scales.clamp_(min=1e-5).div_(q_max)
    t.div_(scales).round_().mul_(scales)
    return t


class FakeQuantLinear(nn.Module):
    def __init__(self, linear, wbits, abits, quantize_output):
        super().__init__()
        self.weight = quantize_weight_per_channel_absmax(linear.weight.detach().clone(), wbits)
        self.act_quant = partial(quantize_activation_per_token_absmax, n_bits=abits)
        self.output_quant = self.act_quant if quantize_output else (lambda x: x)

    @torch.no_grad()
    def forward(self, x):
        q_x = self.act_quant(x)
        return self.output_quant(nn.functional.linear(q_x, self.weight))


# ---- HF Qwen3 modules ------------------------------------------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, weight, eps):
        super().__init__()
        self.weight = nn.Parameter(weight.clone(), requires_grad=False)
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def linear(w):
    m = nn.Linear(w.shape[1], w.shape[0], bias=False)
    m.weight = nn.Parameter(w.clone(), requires_grad=False)
    return m


class MLP(nn.Module):
    def __init__(self, w, p):
        super().__init__()
        self.gate_proj = linear(w[p + "gate_proj.weight"])
        self.up_proj = linear(w[p + "up_proj.weight"])
        self.down_proj = linear(w[p + "down_proj.weight"])

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class MoE(nn.Module):
    def __init__(self, cfg, w, p):
        super().__init__()
        self.gate = linear(w[p + "gate.weight"])
        self.experts = nn.ModuleList(
            [MLP(w, f"{p}experts.{e}.") for e in range(cfg["num_experts"])])
        self.top_k = cfg["num_experts_per_tok"]
        self.norm_topk_prob = cfg["norm_topk_prob"]

    def forward(self, x):
        b, t, h = x.shape
        flat = x.reshape(-1, h)
        probs = torch.softmax(self.gate(flat), dim=1, dtype=torch.float32)
        rw, sel = torch.topk(probs, self.top_k, dim=-1)
        if self.norm_topk_prob:
            rw = rw / rw.sum(dim=-1, keepdim=True)
        rw = rw.to(x.dtype)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            tok, slot = torch.where(sel == e)
            if tok.numel() == 0:
                continue
            out.index_add_(0, tok, expert(flat[tok]) * rw[tok, slot, None])
        return out.reshape(b, t, h)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg, w, p):
        super().__init__()
        self.q_proj = linear(w[p + "q_proj.weight"])
        self.k_proj = linear(w[p + "k_proj.weight"])
        self.v_proj = linear(w[p + "v_proj.weight"])
        self.o_proj = linear(w[p + "o_proj.weight"])
        self.q_norm = RMSNorm(w[p + "q_norm.weight"], cfg["rms_norm_eps"])
        self.k_norm = RMSNorm(w[p + "k_norm.weight"], cfg["rms_norm_eps"])
        self.nh, self.nkv, self.hd = (cfg["num_attention_heads"], cfg["num_key_value_heads"],
                                      cfg["head_dim"])

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(b, t, self.nh, self.hd)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(b, t, self.nkv, self.hd)).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.nh // self.nkv
        k = k[:, :, None].expand(b, self.nkv, rep, t, self.hd).reshape(b, self.nh, t, self.hd)
        v = v[:, :, None].expand(b, self.nkv, rep, t, self.hd).reshape(b, self.nh, t, self.hd)
        mask = torch.full((t, t), float("-inf")).triu(1)
        scores = q @ k.transpose(2, 3) * self.hd ** -0.5 + mask
        attn = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype) @ v
        return self.o_proj(attn.transpose(1, 2).reshape(b, t, self.nh * self.hd))


class Layer(nn.Module):
    def __init__(self, cfg, w, i):
        super().__init__()
        p = f"model.layers.{i}."
        eps = cfg["rms_norm_eps"]
        self.input_layernorm = RMSNorm(w[p + "input_layernorm.weight"], eps)
        self.self_attn = Attention(cfg, w, p + "self_attn.")
        self.post_attention_layernorm = RMSNorm(w[p + "post_attention_layernorm.weight"], eps)
        self.moe = cfg["model_type"] == "qwen3_moe"
        self.mlp = MoE(cfg, w, p + "mlp.") if self.moe else MLP(w, p + "mlp.")

    def forward(self, h, cos, sin):
        h = h + self.self_attn(self.input_layernorm(h), cos, sin)
        return h + self.mlp(self.post_attention_layernorm(h))


class Model(nn.Module):
    def __init__(self, cfg, w):
        super().__init__()
        self.cfg = cfg
        self.embed = w["model.embed_tokens.weight"]
        self.layers = nn.ModuleList([Layer(cfg, w, i) for i in range(cfg["num_hidden_layers"])])
        self.norm = RMSNorm(w["model.norm.weight"], cfg["rms_norm_eps"])
        self.head = w["model.embed_tokens.weight" if cfg["tie_word_embeddings"] else "lm_head.weight"]

    @torch.no_grad()
    def forward(self, ids):
        t = ids.shape[1]
        hd = self.cfg["head_dim"]
        inv_freq = 1.0 / (self.cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64)
                                                     .float() / hd))
        freqs = torch.arange(t).float()[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        h = self.embed[ids]
        for layer in self.layers:
            h = layer(h, cos, sin)
        return self.norm(h) @ self.head.T


# ---- calibration.py / smooth.py --------------------------------------------------------------
@torch.no_grad()
def get_act_scales(model, calib_ids):
    act_scales = {}

    def stat_input_hook(m, x, y, name):
        x = x[0] if isinstance(x, tuple) else x
        hidden_dim = x.shape[-1]
        tensor = x.view(-1, hidden_dim).abs().detach()
        coming_max = torch.max(tensor, dim=0)[0].float().cpu()
        act_scales[name] = (torch.max(act_scales[name], coming_max) if name in act_scales
                            else coming_max)

    hooks = [m.register_forward_hook(partial(stat_input_hook, name=name))
             for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    for row in calib_ids:
        model(row[None, :])
    for hk in hooks:
        hk.remove()
    return act_scales


@torch.no_grad()
def smooth_ln_fcs_llama_like(ln, fcs, act_scales, alpha):
    for fc in fcs:
        assert ln.weight.numel() == fc.in_features == act_scales.numel()
    dtype = fcs[0].weight.dtype
    act_scales = act_scales.to(dtype=dtype)
    weight_scales = torch.cat([fc.weight.abs().max(dim=0, keepdim=True)[0] for fc in fcs], dim=0)
    weight_scales = weight_scales.max(dim=0)[0].clamp(min=1e-5)
    scales = (act_scales.pow(alpha) / weight_scales.pow(1 - alpha)).clamp(min=1e-5).to(dtype)
    ln.weight.div_(scales)
    for fc in fcs:
        fc.weight.mul_(scales.view(1, -1))


@torch.no_grad()
def smooth_lm(model, scales, alpha):
    for i, layer in enumerate(model.layers):
        name = f"layers.{i}"
        attn = layer.self_attn
        smooth_ln_fcs_llama_like(layer.input_layernorm, [attn.q_proj, attn.k_proj, attn.v_proj],
                                 scales[name + ".self_attn.q_proj"], alpha)
        if layer.moe:
            fcs = [layer.mlp.gate]
            for e in layer.mlp.experts:
                fcs += [e.gate_proj, e.up_proj]
            smooth_ln_fcs_llama_like(layer.post_attention_layernorm, fcs,
                                     scales[name + ".mlp.gate"], alpha)
        else:
            smooth_ln_fcs_llama_like(layer.post_attention_layernorm,
                                     [layer.mlp.gate_proj, layer.mlp.up_proj],
                                     scales[name + ".mlp.gate_proj"], alpha)


def quantize_qwen3_like(model, wbits, abits, quantize_bmm_input):
    fq = partial(FakeQuantLinear, wbits=wbits, abits=abits)
    for layer in model.layers:
        attn = layer.self_attn
        attn.q_proj = fq(attn.q_proj, quantize_output=quantize_bmm_input)
        attn.k_proj = fq(attn.k_proj, quantize_output=quantize_bmm_input)
        attn.v_proj = fq(attn.v_proj, quantize_output=quantize_bmm_input)
        attn.o_proj = fq(attn.o_proj, quantize_output=False)
        for mlp in (layer.mlp.experts if layer.moe else [layer.mlp]):
            mlp.gate_proj = fq(mlp.gate_proj, quantize_output=False)
            mlp.up_proj = fq(mlp.up_proj, quantize_output=False)
            mlp.down_proj = fq(mlp.down_proj, quantize_output=False)
    return model


def main():
    model_dir, calib_path, eval_path, alpha, wbits, abits, qkv_out, out_path = sys.argv[1:9]
    alpha, wbits, abits, qkv_out = float(alpha), int(wbits), int(abits), qkv_out == "1"
    cfg, w = load(model_dir)
    w = {k: v.float() for k, v in w.items()}
    calib = torch.tensor(json.load(open(calib_path)), dtype=torch.long)
    ids = torch.tensor(json.load(open(eval_path)), dtype=torch.long)
    fp = Model(cfg, w)
    smoothed = copy.deepcopy(fp)
    smooth_lm(smoothed, get_act_scales(smoothed, calib), alpha)
    outs = [quantize_qwen3_like(smoothed, wbits, abits, qkv_out)(ids),
            quantize_qwen3_like(copy.deepcopy(fp), wbits, abits, qkv_out)(ids), fp(ids)]
    torch.cat([o.reshape(-1) for o in outs]).double().numpy().astype("<f8").tofile(out_path)


if __name__ == "__main__":
    main()
