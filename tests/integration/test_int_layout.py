"""Reverse ingest (newest_keyframe, on by default): the newest version of each chain is stored as
its keyframe and older versions as deltas against their successors (reverse deltas), so the
checkpoint a job resumes from is the cheapest to read. Each ingest codes the new version once and
re-codes its predecessor once; the idle layout pass only bounds chain depth."""
import os
import threading

import pytest

import tpdefs_harness as H
from test_admin import versions, read_uncached, admin

pytestmark = pytest.mark.skipif(not H.fuse_available(), reason='needs /dev/fuse and root')


def entries(m):
    return {e['path'].lstrip('/'): e for e in m.stats()['files']}


def base(es, rel):
    b = es[rel].get('base')
    return b.lstrip('/') if isinstance(b, str) else b


def put(m, src):
    with open(src, 'rb') as f, open(m.p(os.path.basename(src)), 'wb') as g:
        g.write(f.read())


def check_all(m, srcs, when):
    for s in srcs:
        got = H.sha256_bytes(read_uncached(m.p(os.path.basename(s))))
        assert got == H.sha256_file(s), f'{when}: {os.path.basename(s)} differs'


def test_newest_is_the_keyframe_after_flush(mounts):
    srcs = versions()[:5]
    names = [os.path.basename(s) for s in srcs]
    # a batch: every version closed before the first is encoded (long debounce, then flush)
    m = mounts.new('nk', opts=['debounce_ms=60000'])
    for s in srcs:
        put(m, s)
    r = m.admin('flush', m.backing)
    assert r.returncode == 0, r.stdout + r.stderr
    # taken in newest first: the newest is coded once, as the keyframe, and each older version
    # once, against its stored successor; nothing is re-coded, the layout pass has nothing to do
    enc = [l for l in r.stdout.splitlines() if l.startswith('encoded ')]
    assert len(enc) == len(srcs), r.stdout
    assert names[-1] in enc[0] and 'base=0' in enc[0], r.stdout
    assert not any(' recoded=' in l for l in enc), r.stdout
    assert 'chains now end in a keyframe' not in r.stdout, r.stdout
    es = entries(m)
    assert base(es, names[-1]) is None and es[names[-1]]['depth'] == 0, es[names[-1]]
    for i in range(len(names) - 1):
        assert base(es, names[i]) == names[i + 1], (names[i], es[names[i]])
        assert es[names[i]]['depth'] == len(names) - 1 - i
    check_all(m, srcs, 'after flush')
    m.remount()
    check_all(m, srcs, 'after remount')
    assert admin('verify', m.backing).returncode == 0


def test_each_new_version_takes_over_the_keyframe(mounts):
    """Checkpoints arriving one at a time: each flush moves the keyframe to the newest (one encode,
    one re-code of the predecessor), and the earlier reverse deltas stay as they are."""
    srcs = versions()[:4]
    names = [os.path.basename(s) for s in srcs]
    m = mounts.new('nk1')
    objs = []
    for k, s in enumerate(srcs):
        put(m, s)
        m.flush()
        es = entries(m)
        assert base(es, names[k]) is None, es[names[k]]
        if k:
            assert base(es, names[k - 1]) == names[k]
        if k >= 2:
            # the version two back kept its object: only the last pair was re-encoded
            assert es[names[k - 2]]['object'] == objs[k - 1][names[k - 2]]
            assert base(es, names[k - 2]) == names[k - 1]
        objs.append({n: es[n]['object'] for n in names[:k + 1]})
    check_all(m, srcs, 'after the last flush')


def test_newest_keyframe_off_keeps_forward_deltas(mounts):
    srcs = versions()[:3]
    names = [os.path.basename(s) for s in srcs]
    m = mounts.new('fwd', opts=['newest_keyframe=0'])
    for s in srcs:
        put(m, s)
    m.flush()
    es = entries(m)
    assert base(es, names[0]) is None
    assert base(es, names[1]) == names[0] and base(es, names[2]) == names[1]


def test_reads_during_the_layout_pass_are_exact(mounts):
    """Readers hammer every file while the flush re-encodes the chain under them."""
    srcs = versions()[:6]
    m = mounts.new('nkr', opts=['newest_keyframe=0'])
    for s in srcs[:5]:
        put(m, s)
    m.flush()
    m.unmount()
    m.opts = []          # the same store, now with the layout pass
    m.mount()
    put(m, srcs[5])
    want = {os.path.basename(s): H.sha256_file(s) for s in srcs}
    stop = threading.Event()
    errors = []

    def reader():
        while not stop.is_set():
            for n, h in want.items():
                try:
                    if H.sha256_bytes(read_uncached(m.p(n))) != h:
                        errors.append(f'{n}: wrong bytes')
                except OSError as e:
                    errors.append(f'{n}: {e}')
    ts = [threading.Thread(target=reader) for _ in range(2)]
    for t in ts:
        t.start()
    try:
        r = m.admin('flush', m.backing)
    finally:
        stop.set()
        for t in ts:
            t.join()
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'layout:' in r.stdout, r.stdout
    assert not errors, errors[:5]
    es = entries(m)
    assert base(es, os.path.basename(srcs[5])) is None
    check_all(m, srcs, 'after the pass')
