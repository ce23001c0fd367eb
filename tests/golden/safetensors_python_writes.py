#!/usr/bin/python3
"""Golden safetensors file written by Python without the safetensors package (struct, json and
the tensors' bytes from python3-torch), with the values it holds as text.

tests/model/safetensors_python_test.cc ("Our reader reads a file that Python wrote") opens the
.safetensors file with bitsweep's reader and compares every tensor with the .txt file.

usage: python3 tests/golden/safetensors_python_writes.py [DIR]   (DIR defaults to tests/golden)
Writes DIR/safetensors_python_writes.safetensors ("__metadata__" names the golden and its
version) and DIR/safetensors_python_writes.txt: the line
"bitsweep-golden safetensors_python_writes 1", then per tensor "name v0 v1 ..." (float64 repr,
exact for every dtype used here).
"""
import json
import os
import struct
import sys

import torch

NAME, VERSION = "safetensors_python_writes", 1
out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))

torch.manual_seed(0)
tensors = {"model.embed_tokens.weight": torch.randn(5, 3).to(torch.bfloat16),
           "model.layers.0.w": torch.randn(2, 2),
           "model.layers.0.h": torch.randn(3).to(torch.float16),
           "ids": torch.tensor([[1, -2], [3, 2**40]])}
NAMES = {torch.bfloat16: "BF16", torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}
header, blobs, offset = {"__metadata__": {"bitsweep_golden": NAME, "version": str(VERSION)}}, [], 0
for name, t in tensors.items():
    view = t.view(torch.int16) if t.dtype in (torch.bfloat16, torch.float16) else t
    blob = view.contiguous().numpy().tobytes()
    header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                    "data_offsets": [offset, offset + len(blob)]}
    blobs.append(blob)
    offset += len(blob)
text = json.dumps(header).encode()
with open(os.path.join(out_dir, NAME + ".safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
with open(os.path.join(out_dir, NAME + ".txt"), "w") as f:
    f.write("bitsweep-golden %s %d\n" % (NAME, VERSION))
    for name, t in tensors.items():
        f.write(name + " " + " ".join(repr(float(v)) for v in t.double().flatten().tolist()) + "\n")
