#!/usr/bin/python3
"""Independent float64 reference of Hugging Face's Qwen3 / Qwen3-MoE forward.

Written from transformers' modeling_qwen3.py / modeling_qwen3_moe.py semantics (eager
attention with repeat_kv, an explicit causal mask, the MoE loop over experts), in plain
torch float64, with its own safetensors parser. Shares no code with bitsweep.

usage: qwen3_reference.py MODEL_DIR IDS_JSON OUT_BIN
  IDS_JSON: [[id, ...], ...] (rows of equal length)
  OUT_BIN:  float64 logits [rows, T, vocab], little-endian, C order
"""
import json
import os
import struct
import sys

import numpy as np
import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = data[base + b: base + end]
        shape = e["shape"]
        dt = e["dtype"]
        if dt == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dt == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif dt == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32).astype(np.float64)
        else:
            raise ValueError(f"{path}: {name}: dtype {dt}")
        out[name] = torch.from_numpy(arr.reshape(shape).copy())
    return out


def load(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    index = os.path.join(model_dir, "model.safetensors.index.json")
    files = (sorted(set(json.load(open(index))["weight_map"].values()))
             if os.path.exists(index) else ["model.safetensors"])
    w = {}
    for f in files:
        w.update(read_safetensors(os.path.join(model_dir, f)))
    return cfg, w


def rms_norm(x, weight, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n_rep):
    b, h, t, d = x.shape
    return x[:, :, None, :, :].expand(b, h, n_rep, t, d).reshape(b, h * n_rep, t, d)


def mlp(w, p, x):
    gate = x @ w[p + "gate_proj.weight"].T
    up = x @ w[p + "up_proj.weight"].T
    return (torch.nn.functional.silu(gate) * up) @ w[p + "down_proj.weight"].T


def moe(cfg, w, p, x):
    b, t, h = x.shape
    flat = x.reshape(-1, h)
    logits = flat @ w[p + "gate.weight"].T
    probs = torch.softmax(logits, dim=1)
    rw, sel = torch.topk(probs, cfg["num_experts_per_tok"], dim=-1)
    if cfg["norm_topk_prob"]:
        rw = rw / rw.sum(dim=-1, keepdim=True)
    out = torch.zeros_like(flat)
    for e in range(cfg["num_experts"]):
        for tok in range(flat.shape[0]):
            for slot in range(sel.shape[1]):
                if sel[tok, slot] == e:
                    out[tok] += rw[tok, slot] * mlp(w, f"{p}experts.{e}.", flat[tok:tok + 1])[0]
    return out.reshape(b, t, h)


def forward(cfg, w, ids):
    ids = torch.tensor(ids, dtype=torch.long)
    b, t = ids.shape
    hd = cfg["head_dim"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    eps = cfg["rms_norm_eps"]
    h = w["model.embed_tokens.weight"][ids]
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = torch.arange(t, dtype=torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((t, t), float("-inf"), dtype=torch.float64).triu(1)
    sparse_step = cfg.get("decoder_sparse_step", 1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
        q = (x @ w[p + "self_attn.q_proj.weight"].T).view(b, t, nh, hd)
        k = (x @ w[p + "self_attn.k_proj.weight"].T).view(b, t, nkv, hd)
        v = (x @ w[p + "self_attn.v_proj.weight"].T).view(b, t, nkv, hd)
        q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps).transpose(1, 2)
        k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps).transpose(1, 2)
        v = v.transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = repeat_kv(k, nh // nkv)
        v = repeat_kv(v, nh // nkv)
        scores = q @ k.transpose(2, 3) * hd ** -0.5 + mask
        attn = torch.softmax(scores, dim=-1) @ v
        attn = attn.transpose(1, 2).reshape(b, t, nh * hd)
        h = h + attn @ w[p + "self_attn.o_proj.weight"].T
        x = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        is_moe = (cfg["model_type"] == "qwen3_moe" and i not in cfg.get("mlp_only_layers", [])
                  and cfg.get("num_experts", 0) > 0 and (i + 1) % sparse_step == 0)
        h = h + (moe(cfg, w, p + "mlp.", x) if is_moe else mlp(w, p + "mlp.", x))
    h = rms_norm(h, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return h @ head.T


def main():
    model_dir, ids_path, out_path = sys.argv[1:4]
    cfg, w = load(model_dir)
    ids = json.load(open(ids_path))
    logits = forward(cfg, w, ids)
    logits.numpy().astype("<f8").tofile(out_path)


if __name__ == "__main__":
    main()
