import numpy as np, sys
from load import *; from ent import *
S = series('gpt_bf16_st'); res = {}
def sres(a, b):  # int residual of uint16 bit patterns (like DSUB, mod 2^16 then signed)
    d = (a.astype(np.int64) - b.astype(np.int64)) & 0xffff
    return np.where(d >= 0x8000, d - 0x10000, d)
def tofloat(u): return (u.astype(np.uint32) << 16).view(np.float32)
def tobf16(f):  # round-to-nearest-even float32 -> bf16 bits
    u = f.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7fff + ((u >> 16) & 1)) >> 16).astype(np.uint16)
for t in range(2, len(S)):
    A2 = load(S[t-2]); A = load(S[t-1]); B = load(S[t])
    for k, x in B.items():
        a, a2 = A[k], A2[k]
        if x.size < 4096: continue
        exp = (a >> 7) & 255
        d = sres(x, a); z = zz(d); dp = sres(a, a2); zp = zz(dp)
        Lp = np.minimum(bitlen(zp), 15)
        nb = np.concatenate([[0], np.minimum(bitlen(z)[:-1], 15)])  # previous element's residual length (causal)
        r = {'today(exp)': cond_bits(z, exp), 'exp+Lprev_t': cond_bits(z, exp*16 + Lp), 'exp+neigh': cond_bits(z, exp*16 + nb),
             'exp+Lprev_t+neigh': cond_bits(z, (exp*16 + Lp)*16 + nb)}
        for alpha in (0.25, 0.5):
            p = tobf16(tofloat(a) + alpha*(tofloat(a) - tofloat(a2)))
            z2 = zz(sres(x, p)); r[f'pred a={alpha} (exp)'] = cond_bits(z2, exp); r[f'pred a={alpha} exp+Lprev'] = cond_bits(z2, exp*16+Lp)
        for kk, v in r.items(): res[kk] = res.get(kk, 0) + v
        res['n'] = res.get('n', 0) + x.size
n = res.pop('n')
for kk, v in res.items(): print(f'{kk:28s} {v/n:.3f} bits/elem')
