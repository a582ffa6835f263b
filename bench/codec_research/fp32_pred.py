# Real codec cost (cc.py) of optimizer-aware and second-order predictions on fp32 full-state checkpoints.
# Per tensor, coefficients fitted by least squares (side info: <= 4 floats per tensor, counted);
# per chunk, the cheaper of today's base and the prediction (1 byte per chunk counted).
import sys, numpy as np
from load import *; from cc import chunk_costs
scen = sys.argv[1]; S = series(scen); pairs = [int(x) for x in sys.argv[2:]] or list(range(2, len(S)))
def fit(y, feats):
    X = np.stack(feats, 1); c, *_ = np.linalg.lstsq(X, y, rcond=None); return X @ c
tot = {}
def add(cl, name, base_cc, pred_cc, nfl):
    b = sum(x for x, _ in base_cc); p = sum(x for x, _ in pred_cc) + 4*nfl + len(pred_cc)
    mn = sum(min(x, y) for (x, _), (y, _) in zip(base_cc, pred_cc)) + 4*nfl + len(pred_cc)
    s = tot.setdefault((cl, name), [0, 0, 0]); s[0] += b; s[1] += p; s[2] += mn
for t in pairs:
    A2 = load(S[t-2]); A = load(S[t-1]); B = load(S[t])
    for k in B:
        if not k.startswith('w:'): continue
        nm = k[2:]
        if 'm:'+nm not in B: continue
        w1, w0, w00 = B[k], A[k], A2[k]
        if (w1 == w0).all(): continue
        m1, m0, m00 = B['m:'+nm], A['m:'+nm], A2['m:'+nm]; v1, v0, v00 = B['v:'+nm], A['v:'+nm], A2['v:'+nm]
        f = lambda x: x.astype(np.float64)
        dw = f(w1) - f(w0); u = f(m1) / (np.sqrt(f(v1)) + 1e-8)
        cb = {c: chunk_costs(B[c+':'+nm], A[c+':'+nm]) for c in 'wmv'}
        P = {}
        P[('w', 'opt: w0+a*w0+c*u')] = (f(w0) + fit(dw, [u, f(w0)]), 2)
        P[('w', '2nd: w0+a*dw_prev')] = (f(w0) + fit(dw, [f(w0) - f(w00)]), 1)
        P[('w', 'opt+2nd')] = (f(w0) + fit(dw, [u, f(w0), f(w0) - f(w00)]), 3)
        sv = np.sqrt(f(v1)) + 1e-8
        P[('m', 'from dw: a*m0+b*dw*sv+c*dw')] = (fit(f(m1), [f(m0), dw*sv, dw]), 3)
        P[('m', '2nd/ar: a*m0+b*m00')] = (fit(f(m1), [f(m0), f(m00)]), 2)
        P[('v', 'a*v0')] = (fit(f(v1), [f(v0)]), 1)
        P[('v', 'a*v0+b*m1^2')] = (fit(f(v1), [f(v0), f(m1)**2]), 2)
        P[('v', 'a*v0+b*v00')] = (fit(f(v1), [f(v0), f(v00)]), 2)
        P[('v', 'a*v0+b*v00+c*m1^2')] = (fit(f(v1), [f(v0), f(v00), f(m1)**2]), 3)
        for (cl, name), (p, nf) in P.items():
            add(cl, name, cb[cl], chunk_costs(B[cl+':'+nm], p.astype(np.float32)), nf)
    print('pair', t, file=sys.stderr)
for (cl, name), (b, p, mn) in tot.items():
    print(f'{scen} {cl} {name:32s} today {b:>10d}  pred {p:>10d} ({100*(b-p)/b:+.2f}%)  per-chunk min {mn:>10d} ({100*(b-mn)/b:+.2f}%)')
