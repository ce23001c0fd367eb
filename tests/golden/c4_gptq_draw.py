#!/usr/bin/python3
"""Golden (document, offset) pairs of GPTQ's get_c4 validation draw, from CPython's own random.

tests/eval/perplexity_test.cc ("C4 on a non-shard file draws GPTQ's random segments exactly as
CPython would") writes 50 documents whose token counts are (i * 37) % 150 + 5 and asks
C4ValidationStream for 256 segments of 100 tokens; this script makes the draw GPTQ's loader makes
for those lengths (random.seed(0); a random document until it has more than seqlen tokens, then
a random offset).

usage: python3 tests/golden/c4_gptq_draw.py > tests/golden/c4_gptq_draw.txt
Output: the line "bitsweep-golden c4_gptq_draw 1", "lens L0,L1,...", "seqlen N", then one
"doc offset" line per segment.
"""
import random

SEQLEN = 100
SEGMENTS = 256
lens = [(i * 37) % 150 + 5 for i in range(50)]

print("bitsweep-golden c4_gptq_draw 1")
print("lens " + ",".join(str(n) for n in lens))
print("seqlen %d" % SEQLEN)
random.seed(0)
for _ in range(SEGMENTS):
    while True:
        i = random.randint(0, len(lens) - 1)
        if lens[i] > SEQLEN:
            break
    off = random.randint(0, lens[i] - SEQLEN - 1)
    print(i, off)
