# Quick: how much of the weight change does the optimizer state (of the NEW checkpoint) explain?
import sys, numpy as np
from load import *
scen = sys.argv[1]; S = series(scen)
idx = [int(x) for x in sys.argv[2:]] or range(1, len(S))
tot = {}
for t in idx:
    A = load(S[t-1]); B = load(S[t]); A2 = load(S[t-2]) if t >= 2 else None
    names = [k[2:] for k in B if k.startswith('w:')]
    # map optimizer names
    for nm in names:
        w0 = A['w:'+nm].astype(np.float64); w1 = B['w:'+nm].astype(np.float64)
        dw = w1 - w0
        if not dw.any() or 'm:'+nm not in B: continue
        m = B['m:'+nm].astype(np.float64); v = B['v:'+nm].astype(np.float64)
        u = m / (np.sqrt(v) + 1e-8)
        X = np.stack([u, w0], 1)
        c, *_ = np.linalg.lstsq(X, dw, rcond=None)
        r = dw - X @ c
        r1 = dw - X[:, :1] @ np.linalg.lstsq(X[:, :1], dw, rcond=None)[0]
        e = lambda x: 0.5*np.log2(np.mean(x**2)+1e-300)
        res = {'uw': e(dw)-e(r), 'u': e(dw)-e(r1)}
        if A2 is not None:
            d2 = w0 - A2['w:'+nm]; r2 = dw - d2
            a = (dw@d2)/(d2@d2+1e-300); res['2nd'] = e(dw)-e(r2); res['a*prevd'] = e(dw)-e(dw-a*d2)
        for k, x in res.items():
            tot.setdefault(k, [0, 0]); tot[k][0] += x*len(dw); tot[k][1] += len(dw)
        if t == idx[0] and len(dw) > 100000: print(nm, len(dw), {k: round(x, 2) for k, x in res.items()}, c)
print(scen, {k: round(a/b, 3) for k, (a, b) in tot.items()}, 'bits/elem saved on weights (gaussian approx, RMS)')
