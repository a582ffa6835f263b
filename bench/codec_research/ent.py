# Ideal-coder bound (static per-tensor-class model, model cost ignored except noted) for integer residuals:
# r -> zigzag z; L = bitlength(z); cost = H(L, next 2 bits below the leading one | ctx) + max(L-3, 0) raw bits.
import numpy as np
def zz(d): return np.where(d >= 0, 2*d, -2*d-1).astype(np.uint64)
def bitlen(z):
    z = z.astype(np.float64); L = np.zeros(z.shape, np.int64); nz = z > 0
    L[nz] = np.floor(np.log2(z[nz])).astype(np.int64) + 1
    return L
def sym(z):
    L = bitlen(z); sh = np.maximum(L - 3, 0)
    top = (z >> sh.astype(np.uint64)).astype(np.int64)  # leading 3 bits (or z itself when small)
    return L * 8 + (top & 7), sh
def H(keys):
    _, c = np.unique(keys, return_counts=True); p = c / c.sum()
    return -(c * np.log2(p)).sum()
def cond_bits(z, ctx):
    """total bits: H(sym | ctx) + raw bits"""
    s, sh = sym(z)
    ctx = np.asarray(ctx, np.int64)
    return H(ctx * 4096 + s) - H(ctx) + sh.sum()
import torch
def kt_bits(ctx, s, alpha=1/16, K=None):
    """Adaptive (KT/Dirichlet-alpha) code length in bits of symbols s given contexts ctx, learnt from
    nothing (one chunk = one independent model), alphabet = symbols seen (+ log2 K per new symbol)."""
    ctx = np.asarray(ctx, np.int64); s = np.asarray(s, np.int64)
    K = K or (int(s.max()) + 1)
    key = ctx * (K + 1) + s
    _, cs = np.unique(key, return_counts=True)
    _, cc = np.unique(ctx, return_counts=True)
    lg = lambda x: torch.lgamma(torch.from_numpy(np.asarray(x, np.float64))).numpy()
    a = alpha
    nat = (lg(cc + a*K) - lg(a*K)).sum() - (lg(cs + a) - lg(a)).sum()
    return nat / np.log(2)
def kt_best(ctx, s):
    return min(kt_bits(ctx, s, a) for a in (1/2, 1/8, 1/32))
def adapt_bits(z, ctx):
    """realistic per-chunk adaptive cost: KT over (L, top bits) symbols given ctx + raw low bits"""
    s, sh = sym(z)
    return kt_best(ctx, s) + sh.sum()
