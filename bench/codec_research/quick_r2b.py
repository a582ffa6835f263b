# Gaussian (RMS) estimate of bits saved on fp32 weight deltas by richer optimizer-aware features:
# u_t = m_t/sqrt(v_t) (new ckpt), u_prev = m_{t-1}/sqrt(v_{t-1}) (base), w0 (weight decay), per tensor and per 64K chunk.
import sys, numpy as np
from load import *
S = series('gpt_full_state'); tot = {}
e = lambda x: 0.5*np.log2(np.mean(x**2)+1e-300)
for t in (2, 5, 8):
    A = load(S[t-1]); B = load(S[t])
    for k in B:
        if not k.startswith('w:'): continue
        nm = k[2:]; f = lambda x: x.astype(np.float64)
        dw = f(B[k]) - f(A[k]); w0 = f(A[k])
        u = f(B['m:'+nm]) / (np.sqrt(f(B['v:'+nm])) + 1e-8); up = f(A['m:'+nm]) / (np.sqrt(f(A['v:'+nm])) + 1e-8)
        for name, X in (('u,w0', [u, w0]), ('u,up,w0', [u, up, w0])):
            for gran in ('tensor', 'chunk'):
                step = len(dw) if gran == 'tensor' else 65536; r = np.empty_like(dw)
                for o in range(0, len(dw), step):
                    Xs = np.stack([x[o:o+step] for x in X], 1); c, *_ = np.linalg.lstsq(Xs, dw[o:o+step], rcond=None); r[o:o+step] = dw[o:o+step] - Xs @ c
                kk = f'{name} per {gran}'; s = tot.setdefault(kk, [0, 0]); s[0] += (e(dw) - e(r)) * len(dw); s[1] += len(dw)
for kk, (a, b) in tot.items(): print(f'full_state w: {kk:20s} {a/b:.3f} bits/elem saved (RMS estimate)')
