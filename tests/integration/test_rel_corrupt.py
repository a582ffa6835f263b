"""Damaged object blobs and database pages: EIO only where the damage is, other files exact,
never wrong bytes, the daemon never crashes; verify / PRAGMA quick_check report it."""
import errno
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

import dbpages
import tpdefs_harness as H
from test_rel_00_util import SOAK, read, seeded, verify, write_file

MiB = 1 << 20


def db_rows(backing, sql):
    con = sqlite3.connect(f'file:{os.path.join(backing, "tpdefs.db")}?mode=ro', uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_damaged_blob_eio_only_for_damaged_range(mounts):
    m = mounts.new('blob')
    rng = seeded('blob')
    want = {}
    for k in range(5):
        # incompressible and unrelated: keyframes, chunk payloads stored raw at known places
        want[f'd{k}/file{k}.bin'] = rng.randbytes(3 * MiB + 1000 * k)
        os.makedirs(m.p(f'd{k}'), exist_ok=True)
        write_file(m.p(f'd{k}/file{k}.bin'), want[f'd{k}/file{k}.bin'])
    m.flush()
    m.unmount()
    rows = db_rows(m.backing, 'SELECT d.name, i.obj FROM dentries d JOIN inodes i ON d.ino=i.ino '
                              'WHERE i.obj IS NOT NULL')
    bases = {b for (b,) in db_rows(m.backing, 'SELECT base FROM objects WHERE base IS NOT NULL')}
    byname = {bytes(n).decode(): o for n, o in rows}
    victim_name = 'file2.bin'
    victim = byname[victim_name]
    assert victim not in bases, 'victim object is a base of another: pick unrelated content'
    blob = os.path.join(m.backing, 'objects', f'{victim:016x}.tpdo')
    if not os.path.exists(blob):
        cands = [os.path.join(dp, f) for dp, _, fs in os.walk(m.backing) for f in fs
                 if f.startswith(f'{victim:016x}')]
        assert cands, f'blob of object {victim} not found'
        blob = cands[0]
    # flip a byte of the payload that holds logical offset MiB + 4096 (raw chunks are stored in
    # order right after the 64-byte header, whatever the chunk size): the chunk read below
    off = 64 + MiB + 4096 + 100
    with open(blob, 'r+b') as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x01]))
    m.mount()
    data = want['d2/file2.bin']
    with open(m.p('d2/file2.bin'), 'rb') as f:
        assert os.pread(f.fileno(), MiB, 0) == data[:MiB], 'undamaged chunk 0 wrong'
        with pytest.raises(OSError) as ei:
            os.pread(f.fileno(), 4096, MiB + 4096)
        assert ei.value.errno == errno.EIO, f'damaged chunk: {ei.value!r}, expected EIO'
        assert os.pread(f.fileno(), MiB, 2 * MiB) == data[2 * MiB:3 * MiB], \
            'undamaged chunk 2 wrong'
    with pytest.raises(OSError) as ei:
        read(m.p('d2/file2.bin'))
    assert ei.value.errno == errno.EIO
    for name, d in want.items():
        if name != 'd2/file2.bin':
            assert read(m.p(name)) == d, f'{name} (undamaged) differs'
    assert m.alive()
    r = verify(m, expect_ok=False)
    if r is not None:
        rc, out = r
        assert rc != 0, 'verify passed although an object blob is damaged'
        assert 'file2.bin' in out, f'verify does not name the damaged file: {out[-2000:]}'


def test_damaged_keyframe_under_stream_and_mmap(mounts):
    """A damaged chunk in the keyframe of a reverse chain, read through the stream path (read-ahead
    down the chain) and through an mmap walk: the bytes before the damage are exact, the damage is
    EIO (SIGBUS for the mapping), never other bytes; the daemon lives."""
    from test_rel_00_util import sample_bytes
    m = mounts.new('streamdmg')
    data = [sample_bytes(k) for k in range(3)]
    for k, d in enumerate(data):
        write_file(m.p(f'ckpt_{k:03d}.pt'), d)
    m.flush()
    m.unmount()
    rows = db_rows(m.backing, 'SELECT d.name, i.obj, o.base FROM dentries d JOIN inodes i ON '
                              'd.ino=i.ino JOIN objects o ON o.id=i.obj')
    byname = {bytes(n).decode(): (o, b) for n, o, b in rows}
    key, key_base = byname['ckpt_002.pt']
    assert not key_base, 'the newest version is not the keyframe: reverse ingest expected'
    assert byname['ckpt_001.pt'][1] == key, 'ckpt_001 is not stored against the newest'
    blob = os.path.join(m.backing, 'objects', f'{key:016x}.tpdo')
    # the middle of the blob: inside a tensor chunk's payload (the index sits at the end)
    off = os.path.getsize(blob) // 2
    with open(blob, 'r+b') as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x55]))
    m.mount()
    for name, want in (('ckpt_001.pt', data[1]), ('ckpt_002.pt', data[2])):
        got = bytearray()
        err = None
        with open(m.p(name), 'rb', buffering=0) as f:
            while True:
                try:
                    b = f.read(128 << 10)
                except OSError as e:
                    err = e
                    break
                if not b:
                    break
                got += b
        assert err is not None and err.errno == errno.EIO, \
            f'{name}: streamed through a damaged keyframe chunk without EIO ({err!r})'
        assert bytes(got) == want[:len(got)], f'{name}: wrong bytes before the damage'
        H.report(f"{name}: {len(got)} of {len(want)} bytes exact, then EIO")
        # the mapping: a page that cannot be read is SIGBUS in the reader, and every page
        # copied before it is exact
        expect = os.path.join(m.base, f'{name}.want')
        with open(expect, 'wb') as f:
            f.write(want)
        child = ('import mmap, os, sys\n'
                 'w = open(sys.argv[2], "rb").read()\n'
                 'f = open(sys.argv[1], "rb")\n'
                 'mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n'
                 'for o in range(0, len(w), 4096):\n'
                 '    if mm[o:o + 4096] != w[o:o + 4096]:\n'
                 '        sys.exit(3)\n'
                 'sys.exit(0)\n')
        r = subprocess.run([sys.executable, '-c', child, m.p(name), expect], timeout=120)
        assert r.returncode == -7, f'{name}: mmap walk of a damaged chunk ended {r.returncode} ' \
                                   f'(-7 SIGBUS expected; 3 = wrong bytes, 0 = no error)'
    assert m.alive()


def fill_db(m, n, rng):
    want = {}
    for k in range(n):
        d = f'dir{k % 7}'
        os.makedirs(m.p(d), exist_ok=True)
        name = f'{d}/checkpoint-{k:05d}-' + 'x' * (k % 90) + '.bin'
        want[name] = rng.randbytes(rng.randrange(0, 3000))
        write_file(m.p(name), want[name])
        if k % 5 == 0:
            os.setxattr(m.p(name), 'user.note', rng.randbytes(200))
    return want


WALKER = r'''
import errno, hashlib, json, os, sys
root = sys.argv[1]
out = {}
def onerr(e):
    out['<listing error> ' + os.path.relpath(e.filename or root, root)] = \
        errno.errorcode.get(e.errno, str(e.errno))
for dp, dns, fns in os.walk(root, onerror=onerr):
    for fn in fns:
        p = os.path.join(dp, fn)
        rel = os.path.relpath(p, root)
        try:
            with open(p, 'rb') as f:
                out[rel] = hashlib.sha256(f.read()).hexdigest()
        except OSError as e:
            out[rel] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(out))
'''


def walk(m, timeout=120):
    import json
    try:
        r = subprocess.run([sys.executable, '-c', WALKER, m.mnt], capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError('walking the mount of a damaged database hung')
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


@pytest.mark.parametrize('damage', ['garbage-page', 'bit-flips', 'zero-page'])
def test_damaged_database(mounts, damage):
    m = mounts.new('db-' + damage)
    rng = seeded('db-' + damage)
    want = fill_db(m, 400 if SOAK else 250, rng)
    m.flush()
    m.unmount()
    db = os.path.join(m.backing, 'tpdefs.db')
    for ext in ('-wal', '-shm'):
        p = db + ext
        assert not os.path.exists(p) or os.path.getsize(p) == 0 or ext == '-shm', \
            f'{p} not checkpointed at clean unmount ({os.path.getsize(p)} bytes)'
    pristine = m.backing + '.pristine'
    shutil.copytree(m.backing, pristine)
    size = os.path.getsize(db)
    page = 4096
    npages = size // page
    assert npages >= 8, f'database too small ({npages} pages) to damage a middle page'
    results = []
    for pg in sorted({npages // 2, npages // 3, 2 * npages // 3}):
        shutil.rmtree(m.backing)
        shutil.copytree(pristine, m.backing)
        with open(db, 'r+b') as f:
            f.seek(pg * page)
            if damage == 'garbage-page':
                f.write(rng.randbytes(page))
            elif damage == 'zero-page':
                f.write(bytes(page))
            else:
                buf = bytearray(f.read(page))
                for _ in range(8):
                    i = rng.randrange(page)
                    buf[i] ^= 1 << rng.randrange(8)
                f.seek(pg * page)
                f.write(buf)
        rc, out = m.run_mount()
        if rc != 0:
            assert rc > 0 and rc < 128, f'mount.tpdefs died by a signal ({rc}) on a damaged db'
            assert out.strip(), 'mount.tpdefs refused a damaged db without a message'
            assert not H.mounted_at(m.mnt)
            results.append(f'page {pg}/{npages}: refused: {out.strip().splitlines()[-1][:120]}')
            continue
        m.pids = H.daemon_pids(m.mnt)
        m.all_pids.update(m.pids)
        got = walk(m)
        assert m.alive(), f'daemon died serving a damaged database (page {pg})'
        wrong, eio, missing, ok = [], 0, 0, 0
        for name, data in want.items():
            g = got.get(name)
            if g is None:
                missing += 1
            elif g == H.sha256_bytes(data):
                ok += 1
            elif g in ('EIO', 'ENOENT', 'EBADMSG', 'ESTALE'):
                eio += 1
            else:
                wrong.append((name, g))
        listing = {n: g for n, g in got.items() if n.startswith('<listing error>')}
        extra = [n for n in got if n not in want and n not in listing]
        m.unmount()
        results.append(f'page {pg}/{npages}: served: {ok} exact, {eio} errors, {missing} missing, '
                       f'{len(wrong)} WRONG, {len(extra)} unexpected names, listing errors: '
                       f'{sorted(set(listing.values()))[:3]} in {len(listing)} dirs')
        # every page carries a checksum (format 2): a flipped bit inside a record, which is a
        # valid and different record, is EIO like any other damage, never another file's bytes
        assert not wrong, f'damaged db page {pg}: wrong bytes returned for {wrong[:5]}'
    # quick_check on the damaged copy (what verify is meant to run)
    con = sqlite3.connect(f'file:{db}?mode=ro', uri=True)
    try:
        qc = con.execute('PRAGMA quick_check').fetchall()
    except sqlite3.DatabaseError as e:
        qc = [(f'error: {e}',)]
    finally:
        con.close()
    results.append(f'PRAGMA quick_check: {qc[0][0][:100]}')
    for line in results:
        H.report(f'damaged db ({damage}): {line}')
    # the last damaged copy is in place: its page fails its checksum, whatever SQLite's own
    # quick_check (above, without tpdefs's checksums) makes of it, and verify says so
    assert dbpages.bad_pages(db), 'the damage left every page checksum intact'
    r = verify(m, expect_ok=False)
    if r is not None:
        assert r[0] != 0, f'verify passed on a damaged database: {r[1][-1000:]}'
    shutil.rmtree(pristine, ignore_errors=True)
