# bf16 weights: context = quantized regression of the residual's bit length on (exponent one-hot, L of the
# previous delta of the same element [needs 2 bases], L of left and upper neighbours); adaptive per chunk.
import numpy as np, sys
from load import *; from ent import *
S = series('gpt_bf16_st'); res = {}; n = 0
def sres(a, b):
    d = (a.astype(np.int64) - b.astype(np.int64)) & 0xffff
    return np.where(d >= 0x8000, d - 0x10000, d)
import json, struct
def shapes(path):
    with open(path, 'rb') as f:
        nn = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(nn))
    return {'w:'+k: v['shape'] for k, v in h.items() if k != '__metadata__'}
CH = 131072
def regctx(L, feats, exp, step=0.5):
    ue, ei = np.unique(exp, return_inverse=True)
    X = np.concatenate([np.eye(len(ue))[ei]] + [f[:, None].astype(np.float64) for f in feats], 1)
    c, *_ = np.linalg.lstsq(X, L.astype(np.float64), rcond=None)
    mu = X @ c
    return np.round(mu / step).astype(np.int64) + 100, 16 * X.shape[1]  # side info bits
for t in [2, 4, 6, 8]:
    A2 = load(S[t-2]); A = load(S[t-1]); B = load(S[t]); shp = shapes(S[t][0])
    for k, x in B.items():
        if x.size < 4096: continue
        a, a2 = A[k], A2[k]; ncol = shp[k][-1] if len(shp[k]) > 1 else 1
        for o in range(0, x.size, CH):
            xs, as_, a2s = x[o:o+CH], a[o:o+CH], a2[o:o+CH]
            exp = ((as_ >> 7) & 255).astype(np.int64)
            z = zz(sres(xs, as_)); L = bitlen(z)
            Lp = bitlen(zz(sres(as_, a2s)))
            nb = np.concatenate([[0], L[:-1]])
            up = np.concatenate([np.zeros(ncol, np.int64), L[:-ncol]]) if ncol > 1 else nb
            r = {'exp only': adapt_bits(z, exp)}
            for name, feats in (('reg exp+nb+up (1 base)', [nb, up]), ('reg exp+Lp (2 bases)', [Lp]), ('reg exp+Lp+nb+up (2 bases)', [Lp, nb, up])):
                cx, side = regctx(L, feats, exp); r[name] = adapt_bits(z, cx) + side
            for kk, v in r.items(): res[kk] = res.get(kk, 0) + v
            n += xs.size
for kk, v in res.items(): print(f'bf16 {kk:30s} {v/n:.3f} bits/elem')
