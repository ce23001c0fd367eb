#!/usr/bin/env bash
# Regenerates models/demo: the synthetic corpus (seed 1), a 400-merge byte-level BPE learned on
# it, a 1.7M-parameter Qwen3-architecture model trained on it, and held-out evaluation text
# from other seeds in the WikiText-2 / C4 layouts. About 15-20 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build >/dev/null
B=build/tools
OUT=${1:-models/demo}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$B/bitsweep-make-corpus" --out "$WORK/train.txt" --seed 1 --bytes 3000000
"$B/bitsweep-train" --corpus "$WORK/train.txt" --train-bpe 400 --out "$OUT" \
  --hidden 192 --layers 4 --heads 3 --kv-heads 1 --head-dim 64 --intermediate 512 \
  --seqlen 256 --batch 16 --steps 1200 --warmup 50 --lr 3e-3 --eval-every 100 --seed 1 \
  --dtype bf16 --threads 2 | tee "$WORK/train.log"
mkdir -p "$OUT/heldout/wikitext2" "$OUT/heldout/c4"
"$B/bitsweep-make-corpus" --out "$OUT/heldout/wikitext2/wiki.test.raw" --seed 2 --bytes 200000
"$B/bitsweep-make-corpus" --out "$OUT/heldout/c4/heldout.jsonl" --seed 3 --jsonl 200 --doc-bytes 3000
cp "$WORK/train.log" "$OUT/train.log"
