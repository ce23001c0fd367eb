#!/usr/bin/env bash
# Regenerates models/demo (see models/demo/README.md): the synthetic corpus (seed 1, 6 MB), a
# byte-level BPE learned on it (800 merges requested; the learner stops at ~390, when every word
# of the small synthetic vocabulary is one token), a 2.5M-parameter Qwen3-architecture model
# trained on it (1000 AdamW steps, about 17 minutes on 2 cores), and held-out evaluation text
# from other seeds in the WikiText-2 and C4 layouts.
#
# Usage: tools/make_demo_model.sh [OUT_DIR]   (BUILD_DIR=build-foo to use another build tree)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [[ "$BUILD_DIR" == build ]]; then ./scripts/build >/dev/null; fi
B=$BUILD_DIR/tools
OUT=${1:-models/demo}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT/heldout/wikitext2" "$OUT/heldout/c4"
"$B/bitsweep-make-corpus" --out "$WORK/train.txt" --seed 1 --bytes 6000000
"$B/bitsweep-train" --corpus "$WORK/train.txt" --train-bpe 800 --out "$OUT" \
  --hidden 256 --layers 4 --heads 4 --kv-heads 2 --head-dim 64 --intermediate 512 \
  --seqlen 256 --batch 16 --steps 1000 --warmup 50 --lr 3e-3 --eval-every 100 --seed 1 \
  --dtype bf16 --threads 2
"$B/bitsweep-make-corpus" --out "$OUT/heldout/wikitext2/wiki.test.raw" --seed 2 --bytes 200000
"$B/bitsweep-make-corpus" --out "$OUT/heldout/c4/heldout.jsonl" --seed 3 --jsonl 300 \
  --doc-bytes 2500
