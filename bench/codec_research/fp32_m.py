# Adam first moment m_t (37% of full_state's cost, 27 bits/elem today): how far can contexts go?
# m coded as a value (no base): sign | ctx, exponent | ctx, top 3 mantissa bits | exponent (all adaptive per
# 64K-element chunk, KT), 20 low mantissa bits raw. Contexts from tensors a decoder could already have.
import sys, numpy as np
from load import *; from ent import kt_best
from cc import chunk_costs
scen = sys.argv[1]; S = series(scen); pairs = [int(x) for x in sys.argv[2:]]
CH = 65536; res = {}; n = 0
def parts(x):
    u = x.view(np.uint32).astype(np.int64); return u >> 31, (u >> 23) & 255, (u >> 20) & 7
def fexp(x): return ((x.astype(np.float32).view(np.uint32) >> 23) & 255).astype(np.int64)
for t in pairs:
    A = load(S[t-1]); B = load(S[t])
    for k in B:
        if not k.startswith('m:'): continue
        nm = k[2:]; m1 = B[k]; m0 = A[k]; v1 = B['v:'+nm]; w1 = B.get('w:'+nm); w0 = A.get('w:'+nm)
        if (m1 == m0).all(): continue
        today = sum(c for c, _ in chunk_costs(m1, m0))
        res['today codec'] = res.get('today codec', 0) + today * 8
        for o in range(0, m1.size, CH):
            ms = m1[o:o+CH]; s, e, t3 = parts(ms); s0, e0, _ = parts(m0[o:o+CH])
            ve = fexp(np.sqrt(v1[o:o+CH].astype(np.float64)))
            r = {}
            def chain(cs, ce):
                return kt_best(cs, s) + kt_best(ce, e) + kt_best(e, t3) + 20 * ms.size
            zero = np.zeros(ms.size, np.int64)
            r['value, no ctx'] = chain(zero, zero)
            r['ctx m_prev (sign, exp)'] = chain(s0, e0 * 2 + s0 * 0)
            r['ctx sqrt(v_t) exp'] = chain(zero, ve)
            r['ctx sqrt(v_t) exp + m_prev'] = chain(s0, ve * 256 + e0)
            if w1 is not None and w0 is not None:
                dw = w1[o:o+CH].astype(np.float64) - w0[o:o+CH]
                sd = (dw > 0).astype(np.int64); de = fexp(np.abs(dw))
                r['ctx v exp + dw (sign, exp)'] = chain(sd, ve * 256 + de)
                r['ctx v + dw + m_prev'] = chain(sd * 2 + s0, (ve * 256 + de) * 4 + np.clip(e0 - ve + 2, 0, 3))
            for kk, v in r.items(): res[kk] = res.get(kk, 0) + v
            n += ms.size
for kk, v in res.items(): print(f'{scen} m {kk:30s} {v/n:.3f} bits/elem')
