#!/usr/bin/python3
"""Reference BiLLM in python3-torch, written from the published algorithm of
Aaronhuang-778/BiLLM (bigptq.py fasterquant, binary.py high_order_residual, utils/structure.py,
utils/autosearch.py, utils/mask.py; docs/methods.md#billm) in upstream's own form: float32 torch,
NaN-marked masks averaged with nanmean (relying on torch.sign(NaN) == 0), sequential candidate
loops, and numpy.quantile for the break-point candidates. Shares no code with bitsweep.

usage:
  billm_reference.py hor X_BIN MASK_BIN ROWS COLS MAX_ORDER OUT_PREFIX
      X_BIN float32 [ROWS, COLS]; MASK_BIN uint8 0/1 [ROWS, COLS]; writes OUT_PREFIX.<order>
      (float32 [ROWS, COLS]) for order = 1..MAX_ORDER.
  billm_reference.py quant W_BIN H_BIN ROWS COLS BLOCKSIZE UP_LIM METRICS PERCDAMP OUT_PREFIX
      W_BIN float32 [ROWS, COLS]; H_BIN float32 [COLS, COLS]; METRICS a comma-separated list of
      hessian|magnitude. Writes, for each metric, OUT_PREFIX.<metric>.weight (float32
      [ROWS, COLS]), OUT_PREFIX.<metric>.region (int8, 0 = mask1, 1 = mask2, 2 = mask3) and
      OUT_PREFIX.<metric>.json ({"loss", "salient": [k per block]}).
All binary files are little-endian, C order. Exits with status 77 when torch or numpy is missing.
"""
import json
import sys

try:
    import numpy as np
    import torch
except ImportError:
    sys.exit(77)


def residual_binarize(x, mask, order):
    """binary.py high_order_residual: NaN marks the entries outside the mask."""
    acc = torch.zeros_like(x)
    base = x.clone() * mask
    for _ in range(order):
        res = base - acc
        marked = torch.where(mask, res, torch.tensor(float("nan")))
        mu = torch.nanmean(marked, dim=1)
        mu = torch.where(torch.isnan(mu), torch.zeros_like(mu), mu)
        marked -= mu[:, None]
        alpha = torch.nanmean(torch.abs(marked), dim=1)
        alpha = torch.where(torch.isnan(alpha), torch.zeros_like(alpha), alpha)
        b = torch.sign(marked)  # 0 where NaN (outside the mask)
        b *= alpha[:, None]
        b += mu[:, None]
        acc = acc + b * mask
    return acc


def mse(a, b):
    return torch.mean((a - b) ** 2)


def split_masks(t, mask3, border):
    """utils/mask.py generate_structural_mask."""
    keep = ~mask3
    g = torch.abs(t * keep)
    return (g < border) * keep, (g >= border) * keep


def search(t, up_lim):
    """utils/autosearch.py structural_searching: salient column count, then the break point."""
    colscore = t.abs().sum(dim=0)
    _, top = torch.topk(colscore, up_lim)
    best0, best_i = float("inf"), None
    for i in range(1, up_lim):
        m3 = torch.full(t.shape, False)
        m3[:, top[:i]] = True
        e = mse(t, residual_binarize(t, m3, 2) + residual_binarize(t, ~m3, 2))
        if e < best0:
            best0, best_i = e, i
    _, top = torch.topk(colscore, best_i)
    m3 = torch.full(t.shape, False)
    m3[:, top] = True
    g3 = residual_binarize(t, m3, 2)
    flat = torch.abs(t * (~m3)).view(-1)
    qs = torch.linspace(0.10, 0.90, 81)
    cands = torch.tensor(np.quantile(flat.numpy(), q=qs.numpy(), axis=None, keepdims=False))
    best, best_p = float("inf"), None
    for p in cands:
        m1, m2 = split_masks(t, m3, p)
        e = mse(t, residual_binarize(t, m1, 1) + residual_binarize(t, m2, 1) + g3)
        if e < best:
            best, best_p = e, p
    return best_p, m3, best_i


def quantize(w, h, blocksize, up_lim, metric, percdamp):
    """bigptq.py BRAGPTQ.fasterquant with partition=3, orders=(1, 1, 2)."""
    W = w.clone().float()
    H = h.clone()
    cols = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H[torch.arange(cols), torch.arange(cols)] += percdamp * torch.mean(torch.diag(H))
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    losses = torch.zeros(W.shape[0])
    region = torch.zeros(W.shape, dtype=torch.int8)
    salient = []
    for st in range(0, cols, blocksize):
        ed = min(st + blocksize, cols)
        blk = W[:, st:ed]
        if metric == "hessian":
            t = blk ** 2 / (torch.diag(Hinv[st:ed, st:ed]).reshape((1, -1))) ** 2
        else:
            t = blk
        p, m3, k = search(t, up_lim)
        m1, m2 = split_masks(t, m3, p)
        salient.append(k)
        W1 = blk.clone()
        parts = [residual_binarize(W1, m, o) for m, o in ((m1, 1), (m2, 1), (m3, 2))]
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        for i in range(ed - st):
            d = Hinv[st + i, st + i]
            q = torch.zeros_like(W1[:, i])
            for part, m in zip(parts, (m1, m2, m3)):
                q += part[:, i] * m[:, i]
            Q1[:, i] = q
            losses += (W1[:, i] - q) ** 2 / d ** 2 / 2
            Err1[:, i] = (W1[:, i] - q) / d
        W[:, st:ed] = Q1
        W[:, ed:] -= Err1.matmul(Hinv[st:ed, ed:])
        region[:, st:ed] = (m2.to(torch.int8) + 2 * m3.to(torch.int8))
    return W, region, float(torch.sum(losses).item()), salient


def main():
    mode = sys.argv[1]
    if mode == "hor":
        rows, cols, max_order = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
        x = torch.from_numpy(np.fromfile(sys.argv[2], dtype=np.float32).reshape(rows, cols))
        m = torch.from_numpy(np.fromfile(sys.argv[3], dtype=np.uint8).reshape(rows, cols)) != 0
        for order in range(1, max_order + 1):
            out = residual_binarize(x, m, order).numpy().astype(np.float32)
            out.tofile("%s.%d" % (sys.argv[7], order))
    elif mode == "quant":
        rows, cols = int(sys.argv[4]), int(sys.argv[5])
        blocksize, up_lim, metrics = int(sys.argv[6]), int(sys.argv[7]), sys.argv[8]
        percdamp = float(sys.argv[9])
        prefix = sys.argv[10]
        w = torch.from_numpy(np.fromfile(sys.argv[2], dtype=np.float32).reshape(rows, cols))
        h = torch.from_numpy(np.fromfile(sys.argv[3], dtype=np.float32).reshape(cols, cols))
        for metric in metrics.split(","):
            W, region, loss, salient = quantize(w, h, blocksize, up_lim, metric, percdamp)
            out = prefix + "." + metric
            W.numpy().astype(np.float32).tofile(out + ".weight")
            region.numpy().astype(np.int8).tofile(out + ".region")
            with open(out + ".json", "w") as f:
                json.dump({"loss": loss, "salient": salient}, f)
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
