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
            m1 = B['m:'+nm]; v1, v0 = B['v:'+nm], A['v:'+nm]
            u = f(m1) / (np.sqrt(f(v1)) + 1e-8); dw = f(w1) - f(w0)
            ideas['w opt-aware: c*m/sqrt(v)+a*w0'] = (w1, w0, (f(w0) + fit(dw, [u, f(w0)])).astype(np.float32), 2)
            ideas['v a*v0+b*m^2'] = (v1, v0, fit(f(v1), [f(v0), f(m1)**2]).astype(np.float32), 2)
            if A2 is not None:
                w00, v00 = A2[k], A2['v:'+nm]
                ideas['w 2nd-order a*dw_prev [2 bases]'] = (w1, w0, (f(w0) + fit(dw, [f(w0) - f(w00)])).astype(np.float32), 1)
                ideas['w opt-aware + 2nd [2 bases]'] = (w1, w0, (f(w0) + fit(dw, [u, f(w0), f(w0) - f(w00)])).astype(np.float32), 3)
                ideas['v a*v0+b*v00+c*m^2 [2 bases]'] = (v1, v0, fit(f(v1), [f(v0), f(v00), f(m1)**2]).astype(np.float32), 3)
        for name, (x, b, p, nf) in ideas.items():
            sav[name] = sav.get(name, 0) + saving(x, b, p, nf)
    print(scen, 'pair', t, file=sys.stderr)
for name, s in sav.items(): print(f'{scen}\t{name}\t{s}')
