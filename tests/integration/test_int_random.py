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
            st = os.stat(p)
            out[os.path.normpath(os.path.join(rel, n))] = (st.st_size, H.sha256_bytes(data),
                                                           oct(st.st_mode), st.st_nlink)
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

    held = []   # (mount fd, ref fd, name at open time): open files across other operations

    def close_one(h):
        os.close(h[0])
        os.close(h[1])

    def close_all():
        while held:
            close_one(held.pop())

    ops = 0
    try:
        while ops < MAX_OPS and time.time() - t0 < MAX_SECONDS:
            ops += 1
            name = rng.choice(names)
            kind = rng.choices(['create', 'write', 'truncate', 'rename', 'unlink', 'read', 'fsync',
                                'mkdir', 'rmdir', 'append', 'newversion', 'link', 'chmod',
                                'fdopen', 'fdwrite', 'fdread', 'fdclose'],
                               weights=[6, 20, 6, 6, 4, 15, 3, 2, 2, 5, 6, 2, 2, 2, 4, 4, 2])[0]
            if kind in ('fdwrite', 'fdread', 'fdclose') and not held:
                kind = 'fdopen'
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
            elif kind == 'link':
                dst = rng.choice(names)
                on_both(f'link {name} {dst}', lambda r, name=name, dst=dst:
                        os.link(os.path.join(r, name), os.path.join(r, dst)))
            elif kind == 'chmod':
                mode = rng.choice([0o600, 0o644, 0o755, 0o400])
                on_both(f'chmod {name} {oct(mode)}', lambda r, name=name, mode=mode:
                        os.chmod(os.path.join(r, name), mode))
            elif kind == 'fdopen':
                if len(held) >= 4:
                    close_one(held.pop(0))
                fm = _errno(lambda: os.open(m.p(name), os.O_RDWR))
                fr = _errno(lambda: os.open(os.path.join(ref, name), os.O_RDWR))
                log.append(f'fdopen {name}')
                if fm[0] == 0 and fr[0] == 0:
                    held.append((fm[1], fr[1], name))
                else:
                    for e, fd in (fm, fr):
                        if e == 0:
                            os.close(fd)
                    assert fm[0] == fr[0], f'op {len(log)} fdopen {name}: tpdefs ' \
                        f'{errno.errorcode.get(fm[0], fm[0])} vs local ' \
                        f'{errno.errorcode.get(fr[0], fr[0])} (seed {seed})'
            elif kind == 'fdwrite':
                fdm, fdr, fname = rng.choice(held)
                data = rng.randbytes(rng.choice([1, 4096, 30_000]))
                off = rng.randrange(0, 300_000)
                em, rm = _errno(lambda: os.pwrite(fdm, data, off))
                er, rr = _errno(lambda: os.pwrite(fdr, data, off))
                log.append(f'fdwrite {fname} @{off} {len(data)}')
                assert (em, rm) == (er, rr), f'op {len(log)} fdwrite {fname}: tpdefs {(em, rm)} ' \
                                             f'local {(er, rr)} (seed {seed})'
            elif kind == 'fdread':
                fdm, fdr, fname = rng.choice(held)
                off, n = rng.randrange(0, 400_000), rng.choice([1, 4096, 300_000])
                em, rm = _errno(lambda: os.pread(fdm, n, off))
                er, rr = _errno(lambda: os.pread(fdr, n, off))
                log.append(f'fdread {fname} @{off} {n}')
                assert (em, rm) == (er, rr), f'op {len(log)} fdread {fname} (maybe unlinked/renamed ' \
                                             f'since open) differs (seed {seed})'
                assert os.fstat(fdm).st_size == os.fstat(fdr).st_size, \
                    f'op {len(log)} fstat size of held fd on {fname} differs (seed {seed})'
            elif kind == 'fdclose':
                close_one(held.pop(rng.randrange(len(held))))
            elif kind == 'rmdir':
                d = os.path.join(rng.choice(DIRS), 'x' + str(rng.randrange(3)))
                on_both(f'rmdir {d}', lambda r, d=d: os.rmdir(os.path.join(r, d)))
            if ops % CHECK_EVERY == 0:
                compare(m.mnt, ref, f'after op {ops} (seed {seed})')
            if rng.random() < 0.01:
                m.flush()
                log.append('FLUSH')
                nflush += 1
                compare(m.mnt, ref, f'after flush at op {ops} (seed {seed})')
            if not remounted and time.time() - t0 > MAX_SECONDS / 2:
                close_all()
                m.flush()
                m.remount()
                remounted = True
                compare(m.mnt, ref, f'after remount at op {ops} (seed {seed})')
        close_all()
        m.flush()
        compare(m.mnt, ref, f'final after flush (seed {seed})')
        m.remount()
        compare(m.mnt, ref, f'final after remount (seed {seed})')
    except AssertionError:
        print('last operations:\n' + '\n'.join(log[-60:]))
        raise
    finally:
        close_all()
    H.report(f'random differential: {ops} ops, {nflush} random flushes, '
             f'{time.time() - t0:.1f}s (seed {seed})')
    assert ops >= 100, f'only {ops} operations in {MAX_SECONDS}s: daemon far too slow'
