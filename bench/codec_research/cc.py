# Real coding cost through the project's codec (codec_encode from /work/main/core/codec, built as libcodec.so):
# a tensor is cut into 256 KiB chunks from its start, each chunk coded by codec_encode(CODEC_F_TENSOR)
# with the given prediction as "base" (today: pred = the previous checkpoint's tensor).
import ctypes, os, numpy as np
L = ctypes.CDLL(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'libcodec.so'))
L.codec_ctx_new.restype = ctypes.c_void_p
L.codec_bound.restype = ctypes.c_size_t; L.codec_bound.argtypes = [ctypes.c_size_t]
L.codec_encode.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                           ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_uint8)]
L.codec_decode.argtypes = [ctypes.c_void_p, ctypes.c_uint8, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                           ctypes.c_uint, ctypes.c_void_p, ctypes.c_size_t]
CTX = L.codec_ctx_new(3)
CH = 256 * 1024
OUT = ctypes.create_string_buffer(L.codec_bound(CH) + 1024)
def chunk_costs(new, pred, verify=False):
    """list of (bytes, codec) per chunk; new/pred same dtype arrays (float32 or uint16)"""
    nb = np.ascontiguousarray(new).view(np.uint8); pb = np.ascontiguousarray(pred).view(np.uint8) if pred is not None else None
    w = new.dtype.itemsize; res = []
    for o in range(0, len(nb), CH - CH % w):
        d = nb[o:o+CH]; n = len(d)
        olen = ctypes.c_size_t(0); cid = ctypes.c_uint8(0)
        b = pb[o:o+CH] if pb is not None else None
        r = L.codec_encode(CTX, d.ctypes.data, n, b.ctypes.data if b is not None else None, n if b is not None else 0,
                           w, 1, OUT, ctypes.byref(olen), ctypes.byref(cid))
        assert r == 0, r
        if verify:
            dec = np.zeros(n, np.uint8)
            r = L.codec_decode(CTX, cid.value, OUT, olen.value, b.ctypes.data if b is not None else None, n if b is not None else 0, w, dec.ctypes.data, n)
            assert r == 0 and (dec == d).all()
        res.append((olen.value, cid.value))
    return res
def cost(new, pred, verify=False):
    return sum(x for x, _ in chunk_costs(new, pred, verify))
