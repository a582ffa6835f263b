"""Helpers for the PyTorch client suite: tiny models, a spec-exact safetensors writer/reader,
reference saves for bit-exact comparison, predecessor checks via `tpdefs-admin stats`."""
import json
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)   # deterministic CPU reductions for exact loss comparisons


class Tiny(nn.Module):
    """~280k parameters (~1.1 MB fp32): several chunks, trains in milliseconds."""

    def __init__(self, vocab=97, d=96, hidden=384):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.l1 = nn.Linear(d, hidden)
        self.drop = nn.Dropout(0.1)
        self.l2 = nn.Linear(hidden, d)
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, x):
        h = self.emb(x)
        h = h + self.l2(self.drop(F.gelu(self.l1(h))))
        return self.head(self.ln(h))


def make_batch(gen, vocab=97, B=8, T=16):
    x = torch.randint(vocab, (B, T), generator=gen)
    return x, (x * 7 + 3) % vocab


def train_steps(model, opt, gen, n):
    losses = []
    for _ in range(n):
        x, y = make_batch(gen)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def new_training(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    m = Tiny()
    if dtype != torch.float32:
        m = m.to(dtype)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed + 1)
    return m, opt, gen


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def ref_save(obj, path, refdir):
    """torch.save to the mount and to a local reference file with the same basename (the zip's
    archive name is derived from it); returns the reference bytes the mount must return."""
    torch.save(obj, path)
    ref = os.path.join(refdir, os.path.basename(path))
    torch.save(obj, ref)
    return read(ref)


def assert_state_equal(a, b, where=''):
    """Deep equality of nested state (tensors bitwise, incl. dtype and shape)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a.view(torch.uint8) if a.dtype == torch.bfloat16 else a,
                           b.view(torch.uint8) if b.dtype == torch.bfloat16 else b) or \
            (a.dtype.is_floating_point and torch.equal(a.isnan(), b.isnan()) and
             torch.equal(a.nan_to_num(), b.nan_to_num())), f'tensor differs at {where}'
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f'keys differ at {where}'
        for k in a:
            assert_state_equal(a[k], b[k], f'{where}/{k}')
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_state_equal(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'


# -- safetensors (spec-exact, same approach as the corpus generator) -------------------------------
DT = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.int64: 'I64',
      torch.int32: 'I32'}
RDT = {v: k for k, v in DT.items()}


def safetensors_parts(sd, metadata=None):
    """[8-byte LE header length, JSON header padded to 8, raw LE tensor data...]"""
    header, blobs, off = {}, [], 0
    if metadata:
        header['__metadata__'] = metadata
    for k in sorted(sd):
        t = sd[k].detach().contiguous().cpu()
        b = t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else \
            t.numpy().tobytes()
        header[k] = {'dtype': DT[t.dtype], 'shape': list(t.shape),
                     'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    return [struct.pack('<Q', len(h)), h] + blobs


def save_safetensors(sd, path, metadata=None):
    """Writes like the corpus generator (length, header, then one write per tensor); returns
    the bytes written."""
    parts = safetensors_parts(sd, metadata)
    with open(path, 'wb') as f:
        for b in parts:
            f.write(b)
    return b''.join(parts)


def load_safetensors(path):
    """Parse strictly: header length, JSON header, contiguous in-bounds offsets."""
    raw = read(path)
    n = struct.unpack('<Q', raw[:8])[0]
    assert 8 + n <= len(raw), 'header length beyond file'
    header = json.loads(raw[8:8 + n])
    meta = header.pop('__metadata__', None)
    data = raw[8 + n:]
    out, end = {}, 0
    for k, v in sorted(header.items(), key=lambda kv: kv[1]['data_offsets'][0]):
        a, b = v['data_offsets']
        assert a == end and a <= b <= len(data), f'{k}: bad offsets {a},{b}'
        end = b
        dt = RDT[v['dtype']]
        if dt == torch.bfloat16:
            t = torch.frombuffer(bytearray(data[a:b]), dtype=torch.uint8).view(torch.bfloat16)
        else:
            t = torch.frombuffer(bytearray(data[a:b]), dtype=dt)
        out[k] = t.reshape(v['shape'])
    assert end == len(data), 'trailing bytes after the last tensor'
    return out, meta


# -- predecessor checks ------------------------------------------------------------------------------
def require_stats(m):
    """Skip early (before doing work) when `tpdefs-admin stats` does not exist yet."""
    return m.stats()


def base_of(entries, rel):
    b = entries.get(rel, {}).get('base')
    return b.lstrip('/') if isinstance(b, str) else b


def linked(entries, a, b):
    """a and b are stored as a delta pair, in either direction: a against b (as encoded), or b
    against a (after the daemon made the newest version of the chain its keyframe)."""
    return base_of(entries, a) == b or base_of(entries, b) == a


def has_delta_partner(entries, rel):
    """rel is stored as a delta, or some other file is stored as a delta against it."""
    e = entries.get(rel, {})
    return e.get('base') is not None or e.get('base_object') is not None or \
        any(base_of(entries, o) == rel for o in entries)


def assert_predecessors(m, families, first_may_have_base=False):
    """families: lists of mount-relative paths in write order; after flush, file i must be
    stored against file i-1, or (reverse deltas, newest_keyframe) file i-1 against file i; the
    first one against nothing or its successor."""
    st = m.stats()
    entries = {e['path'].lstrip('/'): e for e in st['files']}
    problems = []
    for seq in families:
        for i, rel in enumerate(seq):
            e = entries.get(rel)
            if e is None:
                problems.append(f'{rel}: missing from stats (have {sorted(entries)[:10]}...)')
                continue
            size = os.path.getsize(m.p(rel))
            if e.get('size') != size:
                problems.append(f'{rel}: stats size {e.get("size")} != {size}')
            base = base_of(entries, rel)
            if i == 0 and first_may_have_base:
                continue
            if i == 0:
                if base is not None and (len(seq) < 2 or base != seq[1]):
                    problems.append(f'{rel}: base {base!r}, expected none or {seq[1:2]}')
            elif not linked(entries, rel, seq[i - 1]):
                problems.append(f'{rel}: base {base!r}, {seq[i - 1]} base '
                                f'{base_of(entries, seq[i - 1])!r}: not a delta pair')
    assert not problems, '\n'.join(problems)
    return entries
