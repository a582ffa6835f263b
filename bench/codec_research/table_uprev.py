# Scenario x idea table through the real codec (cc.py: codec_encode, 256 KiB chunks, prediction given as the base).
# Each idea: per tensor, coefficients fitted by least squares (4 bytes each counted), per chunk the cheaper of
# today's base and the prediction (+1 byte per chunk counted). Savings added up per scenario and applied to the
# measured `tpde encode` totals (baseline.txt). Ideas needing t-2 fall back to today on a series' first pair.
import sys, numpy as np
from load import *; from cc import chunk_costs
f = lambda x: x.astype(np.float64)
def fit(y, feats):
    X = np.stack(feats, 1); c, *_ = np.linalg.lstsq(X, y, rcond=None); return X @ c
def tofloat(u): return (u.astype(np.uint32) << 16).view(np.float32)
def tobf16(x):
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7fff + ((u >> 16) & 1)) >> 16).astype(np.uint16)
def saving(x, base, pred, nf):
    cb = chunk_costs(x, base); cp = chunk_costs(x, pred)
    return sum(max(0, a - b) for (a, _), (b, _) in zip(cb, cp)) - 4 * nf - len(cb)
scen = sys.argv[1]; S = series(scen); sav = {}
for t in range(1, len(S)):
    A = load(S[t-1]); B = load(S[t]); A2 = load(S[t-2]) if t >= 2 else None
    for k in B:
        if not k.startswith('w:'): continue
        nm = k[2:]; w1, w0 = B[k], A[k]
        if (w1 == w0).all(): continue
        ideas = {}
        if w1.dtype == np.uint16:   # bf16 weights only
            if A2 is not None:
                a, a2 = tofloat(w0).astype(np.float64), tofloat(A2[k]).astype(np.float64)
                ideas['w 2nd-order a*dw_prev [2 bases]'] = (w1, w0, tobf16(a + fit(tofloat(w1) - a, [a - a2])), 1)
        else:
            m1 = B['m:'+nm]; v1 = B['v:'+nm]
            u = f(m1) / (np.sqrt(f(v1)) + 1e-8); dw = f(w1) - f(w0)
            up = f(A['m:'+nm]) / (np.sqrt(f(A['v:'+nm])) + 1e-8)
            ideas['w opt-aware with u_prev: c*u+d*u_prev+a*w0'] = (w1, w0, (f(w0) + fit(dw, [u, up, f(w0)])).astype(np.float32), 3)
        for name, (x, b, p, nf) in ideas.items():
            sav[name] = sav.get(name, 0) + saving(x, b, p, nf)
    print(scen, 'pair', t, file=sys.stderr)
for name, s in sav.items(): print(f'{scen}\t{name}\t{s}')
