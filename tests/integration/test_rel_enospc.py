"""A full backing filesystem: writers get ENOSPC (not EIO, not a hang), stored files stay readable,
and once space is freed (unlink through the mount) everything works again without repair.

BACKING lives on a private 64 MiB tmpfs; every client operation runs in a subprocess with a
timeout, so a hung daemon fails the test instead of hanging it."""
import json
import os
import subprocess
import sys
import time

import pytest

import tpdefs_harness as H
from test_rel_00_util import need_root, read, sample_bytes, seeded, verify, write_file

FS_MB = 64

CLIENT = r'''
import errno, json, os, sys, time
mnt, prefix, each, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
res = {'files': [], 'errno': None, 'where': None, 'bytes': 0}
k = 0
t0 = time.time()
while k < limit:
    p = os.path.join(mnt, '%s%04d' % (prefix, k))
    stage = 'open'
    try:
        fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            stage = 'write'
            for off in range(0, each, 1 << 20):
                os.write(fd, os.urandom(min(1 << 20, each - off)))
                res['bytes'] += min(1 << 20, each - off)
            stage = 'fsync'
            os.fsync(fd)
        finally:
            stage = 'close' if stage == 'fsync' else stage
            os.close(fd)
        res['files'].append(p)
    except OSError as e:
        res['errno'] = errno.errorcode.get(e.errno, str(e.errno))
        res['where'] = stage
        break
    k += 1
res['secs'] = time.time() - t0
print(json.dumps(res))
'''


def client(mnt, prefix, each, limit, timeout=120):
    try:
        r = subprocess.run([sys.executable, '-c', CLIENT, mnt, prefix, str(each), str(limit)],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f'writer hung (> {timeout}s) on a full backing filesystem')
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def read_in_subprocess(path, timeout=60):
    try:
        r = subprocess.run([sys.executable, '-c',
                            'import sys,hashlib;print(hashlib.sha256(open(sys.argv[1],"rb")'
                            '.read()).hexdigest())', path],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f'reading {path} hung')
    assert r.returncode == 0, f'reading {path}: {r.stderr.strip()[-300:]}'
    return r.stdout.strip()


@pytest.fixture
def small_fs(mounts):
    need_root()
    d = mounts.localdir('tmpfs')
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={FS_MB}m,mode=0700', 'tpdefs-test',
                        d], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs: {r.stderr}')
    try:
        yield d
    finally:
        # the tpdefs mount on top is torn down first by `mounts` (its fixture is finalised
        # after ours only if we unmount it here)
        for m in mounts.mounts:
            if m.backing.startswith(d):
                m.force_cleanup()
        for args in (['umount', d], ['umount', '-l', d]):
            if not H.mounted_at(d):
                break
            subprocess.run(args, capture_output=True, timeout=30)
        assert not H.mounted_at(d), f'tmpfs {d} left mounted'


@pytest.mark.parametrize('limit', ['default', '4M'])
def test_enospc_fill_free_recover(mounts, small_fs, limit):
    # staging_limit=4M: writers wait for encodes that fail with ENOSPC; they must not wait forever
    opts = ['debounce_ms=100'] + ([f'staging_limit={limit}'] if limit != 'default' else [])
    m = mounts.new('full', backing=os.path.join(small_fs, 'backing'), opts=opts)
    want = {}
    for k in range(3):
        want[f'kept{k}'] = sample_bytes(k)
        write_file(m.p(f'kept{k}'), want[f'kept{k}'])
    m.flush()
    want_sha = {k: H.sha256_bytes(v) for k, v in want.items()}

    # fill: incompressible 4 MiB files until the backing filesystem is full
    t = time.time()
    res = client(m.mnt, 'fill', 4 << 20, 100)
    H.report(f'ENOSPC fill: {len(res["files"])} x 4 MiB files closed, {res["bytes"] >> 20} MiB '
             f'written, then {res["errno"]} at {res["where"]} after {time.time() - t:.1f}s '
             f'(tmpfs {FS_MB} MiB, staging_limit {limit})')
    assert res['errno'] == 'ENOSPC', \
        f'writer on a full backing fs got {res["errno"]} at {res["where"]}, expected ENOSPC'
    assert m.alive(), 'daemon died on a full backing filesystem'
    # the files closed before (stored objects) stay readable and exact
    for name, sha in want_sha.items():
        assert read_in_subprocess(m.p(name)) == sha, f'{name} changed on a full disk'
    # closed fill files are readable too (staged or encoded)
    for p in res['files'][:3]:
        read_in_subprocess(p)
    # encoding with no space left must not lose the staged files: flush may fail, not hang
    try:
        r = m.admin('flush', m.backing, timeout=120)
        H.report(f'ENOSPC: flush on a full disk exited {r.returncode}: '
                 f'{(r.stdout + r.stderr).strip()[-200:]}')
    except subprocess.TimeoutExpired:
        raise AssertionError('tpdefs-admin flush hung on a full backing filesystem')
    assert m.alive()

    # free space through the mount, write again
    for p in res['files']:
        os.unlink(p)
    leftover = os.path.join(m.mnt, 'fill%04d' % len(res['files']))
    if os.path.exists(leftover):
        os.unlink(leftover)
    res2 = client(m.mnt, 'again', 4 << 20, 3)
    assert res2['errno'] is None, f'after freeing space: {res2["errno"]} at {res2["where"]}'
    after = {os.path.basename(p): read(p) for p in res2['files']}
    m.flush()
    st = os.statvfs(small_fs)
    H.report(f'ENOSPC: after unlinking the fill files {st.f_bavail * st.f_frsize >> 20} MiB free '
             f'on the backing fs; 3 new 4 MiB files written and encoded')
    m.remount()
    for name, sha in want_sha.items():
        assert H.sha256_file(m.p(name)) == sha, f'{name} differs after remount'
    for name, data in after.items():
        assert read(m.p(name)) == data, f'{name} differs after remount'
    verify(m)


def test_enospc_mid_encode(mounts, small_fs):
    """Space runs out while closed files are being encoded (objects need room next to the staging
    files): the files stay readable from staging; after freeing space a flush stores them."""
    m = mounts.new('menc', backing=os.path.join(small_fs, 'backing'),
                   opts=['debounce_ms=60000'])
    rng = seeded('menc')
    # ~36 MiB of closed, staged, incompressible files: their objects do not fit any more once
    # the ballast below takes the rest
    want = {}
    for k in range(9):
        want[f's{k}'] = rng.randbytes(4 << 20)
        write_file(m.p(f's{k}'), want[f's{k}'])
    ballast = os.path.join(small_fs, 'ballast')
    with open(ballast, 'wb') as f:
        try:
            while True:
                f.write(b'\xa5' * (1 << 20))
                f.flush()
        except OSError:
            pass
    # leave ~2 MiB: every 4 MiB object runs out of space half-way through
    os.truncate(ballast, max(0, os.path.getsize(ballast) - (2 << 20)))
    try:
        r = m.admin('flush', m.backing, timeout=120)
    except subprocess.TimeoutExpired:
        raise AssertionError('flush hung when encodes ran out of space')
    H.report(f'ENOSPC mid-encode: flush exited {r.returncode}: '
             f'{(r.stdout + r.stderr).strip()[-300:]}')
    assert m.alive(), 'daemon died when encodes ran out of space'
    out = r.stdout + r.stderr
    assert 'space' in out.lower() or r.returncode != 0, \
        'no encode ran out of space: the test did not test what it says'
    tmpdir = os.path.join(m.backing, 'tmp')
    left = os.listdir(tmpdir) if os.path.isdir(tmpdir) else []
    assert not left, f'half-written objects left in {tmpdir} after ENOSPC: {left}'
    for name, data in want.items():
        assert read_in_subprocess(m.p(name)) == H.sha256_bytes(data), \
            f'{name} unreadable or wrong after encodes ran out of space'
    os.unlink(ballast)
    m.flush()
    staged = os.listdir(os.path.join(m.backing, 'staging'))
    assert not staged, f'files still staged after space was freed and flush ran: {staged}'
    m.remount()
    for name, data in want.items():
        assert read(m.p(name)) == data, f'{name} differs after remount'
    verify(m)
