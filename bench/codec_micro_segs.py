#!/usr/bin/python3
"""Print the tensor regions "off len width" of a safetensors or torch zip file (bench/codec_micro.sh).
Torch zip members are assumed 4-byte elements (dtypes would need data.pkl)."""
import json, struct, sys, zipfile
p = sys.argv[1]
W = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
with open(p, "rb") as f:
    head = f.read(8)
    if p.endswith(".safetensors"):
        n = struct.unpack("<Q", head)[0]
        h = json.loads(f.read(n))
        base = 8 + n
        for k, v in h.items():
            if k == "__metadata__":
                continue
            a, b = v["data_offsets"]
            if b > a:
                print(base + a, b - a, W.get(v["dtype"], 1))
    else:
        z = zipfile.ZipFile(p)
        for zi in z.infolist():
            if "/data/" not in zi.filename or zi.compress_type != 0 or zi.file_size == 0:
                continue
            f.seek(zi.header_offset)
            lh = f.read(30)
            nl, el = struct.unpack("<HH", lh[26:30])
            off = zi.header_offset + 30 + nl + el
            w = 4 if zi.file_size % 4 == 0 else 1
            print(off, zi.file_size, w)
