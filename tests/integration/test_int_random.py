"""Seeded random-operation differential test: the same operations on the mount and on a plain
directory; contents, sizes, listings and errors must agree. TPDEFS_SEED=<n> replays a run."""
import errno
import os
import random
import time

import tpdefs_harness as H

MAX_OPS = 3000
MAX_SECONDS = 30
CHECK_EVERY = 40
DIRS = ['', 'a', 'b', 'a/deep']
NFILES = 50


def _errno(fn):
    try:
        r = fn()
        return 0, r
    except OSError as e:
        return e.errno, None


def snapshot(root):
    out = {}
    for dp, dns, fns in os.walk(root):
        rel = os.path.relpath(dp, root)
        for n in dns:
            out[os.path.normpath(os.path.join(rel, n)) + '/'] = None
        for n in fns:
            p = os.path.join(dp, n)
            with open(p, 'rb') as f:
                data = f.read()
            out[os.path.normpath(os.path.join(rel, n))] = (os.stat(p).st_size, H.sha256_bytes(data))
    return out


def compare(m_root, r_root, where):
    a, b = snapshot(m_root), snapshot(r_root)
    if a != b:
        diff = []
        for k in sorted(set(a) | set(b)):
            if a.get(k, 'MISSING') != b.get(k, 'MISSING'):
                diff.append(f'{k}: tpdefs {a.get(k, "MISSING")} local {b.get(k, "MISSING")}')
        raise AssertionError(f'{where}: trees differ:\n' + '\n'.join(diff[:30]))


def test_random_differential(mounts):
    seed = int(os.environ.get('TPDEFS_SEED') or random.SystemRandom().randrange(1 << 31))
    H.report(f'random differential: TPDEFS_SEED={seed}')
    print(f'TPDEFS_SEED={seed}')
    rng = random.Random(seed)
    m = mounts.new('rand')
    ref = mounts.localdir('rand-ref')
    for d in DIRS[1:]:
        os.makedirs(m.p(d))
        os.makedirs(os.path.join(ref, d))
    names = [os.path.join(rng.choice(DIRS), f'f{i:02d}.bin') for i in range(NFILES)]
    bases = [rng.randbytes(rng.choice([10, 5000, 70_000, 300_000])) for _ in range(4)]
    t0 = time.time()
    remounted = False
    nflush = 0
    log = []

    def on_both(desc, fn):
        """fn(root) -> result; both must succeed/fail alike and return the same result."""
        em, rm = _errno(lambda: fn(m.mnt))
        er, rr = _errno(lambda: fn(ref))
        log.append(desc)
        assert em == er, f'op {len(log)} {desc}: tpdefs {errno.errorcode.get(em, em)} vs ' \
                         f'local {errno.errorcode.get(er, er)} (seed {seed})'
        assert rm == rr, f'op {len(log)} {desc}: result differs (seed {seed})'

    ops = 0
    while ops < MAX_OPS and time.time() - t0 < MAX_SECONDS:
        ops += 1
        name = rng.choice(names)
        kind = rng.choices(['create', 'write', 'truncate', 'rename', 'unlink', 'read', 'fsync',
                            'mkdir', 'rmdir', 'append', 'newversion'],
                           weights=[6, 20, 6, 6, 4, 15, 3, 2, 2, 5, 6])[0]
        if kind == 'create':
            data = rng.randbytes(rng.randrange(0, 200_000))

            def f(r, name=name, data=data):
                with open(os.path.join(r, name), 'wb') as fh:
                    fh.write(data)
            on_both(f'create {name} {len(data)}', f)
        elif kind == 'newversion':
            # a checkpoint-like file: a shared base with a few changes, so deltas happen
            b = bytearray(rng.choice(bases))
            for _ in range(rng.randrange(0, 20)):
                i = rng.randrange(0, max(1, len(b) - 8))
                b[i:i + 8] = rng.randbytes(8)
            data = bytes(b)

            def f(r, name=name, data=data):
                tmp = os.path.join(r, name + '.tmp')
                with open(tmp, 'wb') as fh:
                    fh.write(data)
                os.rename(tmp, os.path.join(r, name))
            on_both(f'newversion {name} {len(data)}', f)
        elif kind in ('write', 'append'):
            data = rng.randbytes(rng.choice([1, 7, 4096, 5000, 65536, 100_000]))
            off = rng.choice([0, rng.randrange(0, 400_000), rng.randrange(0, 4096)])

            def f(r, name=name, data=data, off=off, kind=kind):
                flags = os.O_WRONLY | (os.O_APPEND if kind == 'append' else 0)
                fd = os.open(os.path.join(r, name), flags)
                try:
                    if kind == 'append':
                        os.write(fd, data)
                    else:
                        os.pwrite(fd, data, off)
                finally:
                    os.close(fd)
            on_both(f'{kind} {name} @{off} {len(data)}', f)
        elif kind == 'truncate':
            size = rng.choice([0, rng.randrange(0, 500_000), rng.randrange(0, 10)])
            on_both(f'truncate {name} {size}', lambda r, name=name, size=size:
                    os.truncate(os.path.join(r, name), size))
        elif kind == 'rename':
            dst = rng.choice(names)
            on_both(f'rename {name} {dst}', lambda r, name=name, dst=dst:
                    os.rename(os.path.join(r, name), os.path.join(r, dst)))
        elif kind == 'unlink':
            on_both(f'unlink {name}', lambda r, name=name: os.unlink(os.path.join(r, name)))
        elif kind == 'read':
            off, n = rng.randrange(0, 400_000), rng.choice([1, 4096, 70_000, 1 << 20])

            def f(r, name=name, off=off, n=n):
                fd = os.open(os.path.join(r, name), os.O_RDONLY)
                try:
                    return os.pread(fd, n, off)
                finally:
                    os.close(fd)
            on_both(f'read {name} @{off} {n}', f)
        elif kind == 'fsync':
            def f(r, name=name):
                fd = os.open(os.path.join(r, name), os.O_RDWR)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            on_both(f'fsync {name}', f)
        elif kind == 'mkdir':
            d = os.path.join(rng.choice(DIRS), 'x' + str(rng.randrange(3)))
            on_both(f'mkdir {d}', lambda r, d=d: os.mkdir(os.path.join(r, d)))
        elif kind == 'rmdir':
            d = os.path.join(rng.choice(DIRS), 'x' + str(rng.randrange(3)))
            on_both(f'rmdir {d}', lambda r, d=d: os.rmdir(os.path.join(r, d)))
        if ops % CHECK_EVERY == 0:
            compare(m.mnt, ref, f'after op {ops} (seed {seed})')
        if rng.random() < 0.01:
            m.flush()
            nflush += 1
            compare(m.mnt, ref, f'after flush at op {ops} (seed {seed})')
        if not remounted and time.time() - t0 > MAX_SECONDS / 2:
            m.flush()
            m.remount()
            remounted = True
            compare(m.mnt, ref, f'after remount at op {ops} (seed {seed})')
    m.flush()
    compare(m.mnt, ref, f'final after flush (seed {seed})')
    m.remount()
    compare(m.mnt, ref, f'final after remount (seed {seed})')
    H.report(f'random differential: {ops} ops, {nflush} random flushes, '
             f'{time.time() - t0:.1f}s (seed {seed})')
    assert ops >= 100, f'only {ops} operations in {MAX_SECONDS}s: daemon far too slow'
