# bf16 weights: adaptive per-chunk (128K elements) code length with context sets; realistic learning cost.
import numpy as np, sys
from load import *; from ent import *
S = series('gpt_bf16_st'); res = {}; n = 0
def sres(a, b):
    d = (a.astype(np.int64) - b.astype(np.int64)) & 0xffff
    return np.where(d >= 0x8000, d - 0x10000, d)
def tofloat(u): return (u.astype(np.uint32) << 16).view(np.float32)
def tobf16(f):
    u = f.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7fff + ((u >> 16) & 1)) >> 16).astype(np.uint16)
CH = 131072
from load import st_load
import json, struct
def shapes(path):
    with open(path, 'rb') as f:
        nn = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(nn))
    return {'w:'+k: v['shape'] for k, v in h.items() if k != '__metadata__'}
for t in [2, 4, 6, 8]:
    A2 = load(S[t-2]); A = load(S[t-1]); B = load(S[t]); shp = shapes(S[t][0])
    for k, x in B.items():
        if x.size < 4096: continue
        a, a2 = A[k], A2[k]; ncol = shp[k][-1] if len(shp[k]) > 1 else 1
        for o in range(0, x.size, CH):
            xs, as_, a2s = x[o:o+CH], a[o:o+CH], a2[o:o+CH]
            exp = ((as_ >> 7) & 255).astype(np.int64)
            z = zz(sres(xs, as_)); L = np.minimum(bitlen(z), 15)
            Lp = np.minimum(bitlen(zz(sres(as_, a2s))), 15)
            nb = np.concatenate([[0], L[:-1]])
            up = np.concatenate([np.zeros(ncol, np.int64), L[:-ncol]]) if ncol > 1 else nb
            q = lambda v: np.minimum(v, 15) // 2  # 8 buckets
            r = {'today-like exp': adapt_bits(z, exp),
                 'exp+Lp': adapt_bits(z, exp*16 + Lp),
                 'exp+nb': adapt_bits(z, exp*16 + nb),
                 'exp+up': adapt_bits(z, exp*16 + up),
                 'exp+Lp+nb(q)': adapt_bits(z, (exp*16 + Lp)*8 + q(nb)),
                 'exp+Lp+max(nb,up)(q)': adapt_bits(z, (exp*16 + Lp)*8 + q(np.maximum(nb, up))),
                 'exp+q(Lp)+q(nb)+q(up)': adapt_bits(z, ((exp*8 + q(Lp))*8 + q(nb))*8 + q(up)),
                 }
            p = tobf16(tofloat(as_) + 0.25*(tofloat(as_) - tofloat(a2s)))
            z2 = zz(sres(xs, p))
            r['2nd(.25)+exp+Lp+max(nb,up)'] = adapt_bits(z2, (exp*16 + Lp)*8 + q(np.maximum(nb, up)))
            for kk, v in r.items(): res[kk] = res.get(kk, 0) + v
            n += xs.size
    print('pair', t, {kk: round(v/n, 3) for kk, v in res.items()}, file=sys.stderr)
for kk, v in res.items(): print(f'bf16 {kk:30s} {v/n:.3f} bits/elem')
