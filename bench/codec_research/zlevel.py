# Upper bound of "zstd parameters": today's codec with the planes' zstd level raised (codec_ctx_new(L) uses L for
# planes when L > 3), on a subset of pairs.
import sys, numpy as np, cc
from load import *
scen = sys.argv[1]; pairs = [int(x) for x in sys.argv[2].split(',')]; levels = [int(x) for x in sys.argv[3].split(',')]
S = series(scen); tot = {}
ctxs = {L: cc.L.codec_ctx_new(L) for L in levels}
for t in pairs:
    A = load(S[t-1]); B = load(S[t])
    for k, x in B.items():
        if isinstance(x, float): continue
        for L, c in ctxs.items():
            cc.CTX = c; tot[L] = tot.get(L, 0) + cc.cost(x, A[k])
for L in levels: print(f'{scen} pairs {pairs} plane zstd level {L}: {tot[L]} bytes ({100*(tot[levels[0]]/tot[L]-1):+.2f}% ratio vs level {levels[0]})')
