# Per tensor class (w / m / v, fp32 or bf16): today's cost (base = previous checkpoint) in bits/element.
import sys, numpy as np
from load import *; from cc import cost
scen = sys.argv[1]; S = series(scen); tot = {}
for t in range(1, len(S)):
    A = load(S[t-1]); B = load(S[t])
    for k, x in B.items():
        if isinstance(x, float): continue
        c = cost(x, A[k], verify=(t == 1))
        cl = k[0] + ('_frozen' if (x.view(np.uint8) == A[k].view(np.uint8)).all() else '')
        s = tot.setdefault(cl, [0, 0, 0]); s[0] += c; s[1] += x.size; s[2] += x.nbytes
allc = sum(s[0] for s in tot.values()); allb = sum(s[2] for s in tot.values())
for cl, (c, n, b) in sorted(tot.items()):
    print(f'{scen} {cl}: {n} elems, {8*c/n:.3f} bits/elem, {c} bytes, share of cost {c/allc:.3f}')
print(f'{scen} tensors: {allb} bytes -> {allc} ({allb/allc:.4f})')
