# fp32 w and v: today's codec vs an adaptive per-chunk model of the DSUB residual given the base exponent
# (KT over (bit length, 3 bits below the leading one) | exponent, rest raw) -- the "entropy coder" headroom --
# and the same model on the best predictor residual (w: w0 + fitted a*w0 + c*m_t/sqrt(v_t) + d*dw_prev;
# v: fitted a*v0 + b*v00 + c*m_t^2).
import sys, numpy as np
from load import *; from ent import adapt_bits, zz
from cc import chunk_costs
scen = sys.argv[1]; S = series(scen); pairs = [int(x) for x in sys.argv[2:]]
CH = 65536; res = {}; nn = {}
def fit(y, feats):
    X = np.stack(feats, 1); c, *_ = np.linalg.lstsq(X, y, rcond=None); return X @ c
def ires(x, p):
    d = (x.view(np.uint32).astype(np.int64) - p.view(np.uint32).astype(np.int64)) & 0xffffffff
    return np.where(d >= 2**31, d - 2**32, d)
f = lambda x: x.astype(np.float64)
for t in pairs:
    A2 = load(S[t-2]); A = load(S[t-1]); B = load(S[t])
    for k in B:
        if not k.startswith('w:'): continue
        nm = k[2:]
        if 'm:'+nm not in B or (B[k] == A[k]).all(): continue
        w1, w0, w00 = B[k], A[k], A2[k]; m1 = B['m:'+nm]; v1, v0, v00 = B['v:'+nm], A['v:'+nm], A2['v:'+nm]
        u = f(m1) / (np.sqrt(f(v1)) + 1e-8)
        pw = (f(w0) + fit(f(w1) - f(w0), [u, f(w0), f(w0) - f(w00)])).astype(np.float32)
        pv = fit(f(v1), [f(v0), f(v00), f(m1)**2]).astype(np.float32)
        for cl, x, b, p in (('w', w1, w0, pw), ('v', v1, v0, pv)):
            r = {'today codec': 8 * sum(c for c, _ in chunk_costs(x, b))}
            a1 = a2 = 0
            for o in range(0, x.size, CH):
                e = ((b[o:o+CH].view(np.uint32) >> 23) & 255).astype(np.int64)
                a1 += adapt_bits(zz(ires(x[o:o+CH], b[o:o+CH])), e)
                a2 += adapt_bits(zz(ires(x[o:o+CH], p[o:o+CH])), e)
            r['adaptive | base exp'] = a1; r['adaptive | base exp, best pred'] = a2
            for kk, v in r.items(): res[(cl, kk)] = res.get((cl, kk), 0) + v
            nn[cl] = nn.get(cl, 0) + x.size
for (cl, kk), v in res.items(): print(f'{scen} {cl} {kk:34s} {v/nn[cl]:.3f} bits/elem')
