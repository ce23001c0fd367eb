#!/usr/bin/env python3
"""Perplexity against weight bits, one line per method: a notebook-style script (each "# %%"
cell runs on its own in Jupyter or VS Code) over the bitsweep Python client.

    # a coordinator with the demo sweep's results: `bitsweep local --keep` in another terminal
    export PYTHONPATH=$PWD/build/clients/python
    python3 examples/python/plot_ppl_vs_bits.py --sweep 1 --out ppl_vs_bits.png
    python3 examples/python/plot_ppl_vs_bits.py --submit examples/sweeps/demo.yaml

Needs Debian's python3-grpcio, python3-protobuf and python3-matplotlib (scripts/setup).
"""

# %% Parameters (edit these in a notebook; the command line sets them when run as a script)
import argparse
import math
import os
import sys
from collections import defaultdict

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--coordinator", default=os.environ.get("BITSWEEP_COORDINATOR"),
                    help="address (default $BITSWEEP_COORDINATOR, else 127.0.0.1:50051)")
parser.add_argument("--token", default=None, help="client token (default $BITSWEEP_CLIENT_TOKEN)")
parser.add_argument("--tls-ca", default=None, help="CA certificate: TLS to the coordinator")
which = parser.add_mutually_exclusive_group(required=True)
which.add_argument("--sweep", type=int, help="plot this sweep's results")
which.add_argument("--submit", metavar="SWEEP_FILE", help="submit this sweep, watch it, plot it")
parser.add_argument("--task", default="wikitext2", help="the perplexity task to plot")
parser.add_argument("--out", default="ppl_vs_bits.png", help="the PNG to write")
args = parser.parse_args()

# %% Connect, and submit the sweep (or take an existing one)
from bitsweep_client import Client  # noqa: E402  (PYTHONPATH=build/clients/python)

client = Client(args.coordinator, token=args.token, tls_ca=args.tls_ca)
sweep_id = args.sweep
if args.submit:
    sweep_id = client.submit(args.submit)
    for sweep in client.watch(sweep_id):
        print(sweep, file=sys.stderr)

# %% Results: one row per metric. With pandas installed client.results(sweep_id) is a DataFrame
# (e.g. frame[frame.metric == "ppl"].pivot_table(...)); this script keeps to plain dicts.
rows = client.results(sweep_id, as_frame=False)
ppl = [r for r in rows if r["metric"] == "ppl" and r["task"] == args.task]
if not ppl:
    sys.exit(f"sweep {sweep_id} has no {args.task} perplexity (yet)")

# Series: (model, method with its activation bits) -> {wbits: ppl}; the FP baseline per model.
series = defaultdict(dict)
baseline = {}
for r in ppl:
    model = os.path.basename(r["model"].rstrip("/"))
    if r["method"] == "fp":
        baseline[model] = r["value"]
        continue
    label = r["method"] + (f" a{r['abits']}" if r["abits"] else "")
    if r["group_size"]:
        label += f" g{r['group_size']}"
    # Recipes that differ only in options (e.g. gptq act_order) share a point: keep the best.
    old = series[(model, label)].get(r["wbits"])
    series[(model, label)][r["wbits"]] = r["value"] if old is None else min(old, r["value"])

for (model, label), points in sorted(series.items()):
    cells = "  ".join(f"w{b}: {v:.4g}" for b, v in sorted(points.items()))
    print(f"{model} {label}: {cells}")
for model, value in sorted(baseline.items()):
    print(f"{model} fp: {value:.4g}")

# %% Plot: perplexity against bits, FP as a dashed line; a log scale once the values span more
# than a decade (low-bit recipes diverge by orders of magnitude). Agg: no display needed.
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

fig, ax = plt.subplots(figsize=(7, 4.5))
for (model, label), points in sorted(series.items()):
    bits = sorted(points)
    values = [points[b] if math.isfinite(points[b]) else float("nan") for b in bits]
    name = label if len(baseline) <= 1 else f"{model} {label}"
    ax.plot(bits, values, marker="o", label=name)
for model, value in sorted(baseline.items()):
    ax.axhline(value, linestyle="--", color="gray", label=f"{model} FP" if len(baseline) > 1
               else "FP")
finite = [v for points in series.values() for v in points.values() if math.isfinite(v)]
finite += list(baseline.values())
if finite and max(finite) > 10 * min(finite):
    ax.set_yscale("log")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.set_xlabel("weight bits")
ax.set_ylabel(f"{args.task} perplexity")
ax.set_title(f"sweep {sweep_id}: perplexity against bits")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize="small")
fig.tight_layout()
fig.savefig(args.out, dpi=120)
print(f"wrote {args.out}", file=sys.stderr)
