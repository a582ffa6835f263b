"""-o ro: the backing directory is left exactly as it was. Reads are bit-exact, writes fail with
EROFS, gc is refused; files a killed daemon left staged are read from staging as they are, and the
next read-write mount encodes them."""
import errno
import os
import stat

import pytest

import tpdefs_harness as H
from test_rel_00_util import kill_daemon, read

SAMPLE = os.path.join(H.CORPUS, 'gpt_bf16_st')


def sources(n):
    names = sorted(f for f in os.listdir(SAMPLE) if f.endswith('.safetensors'))[:n]
    out = {}
    for f in names:
        with open(os.path.join(SAMPLE, f), 'rb') as fh:
            out[f] = fh.read()
    return out


def snapshot(backing):
    """relative path -> (sha256, size, mtime_ns) of every regular file of BACKING. The control
    socket (runtime state of the daemon, not a regular file) is not part of it."""
    out = {}
    for root, _, files in os.walk(backing):
        for n in files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                out[os.path.relpath(p, backing)] = (H.sha256_file(p), st.st_size, st.st_mtime_ns)
    return out


def assert_erofs(fn, *args):
    with pytest.raises(OSError) as e:
        fn(*args)
    assert e.value.errno == errno.EROFS, e.value


def test_ro_mount_changes_nothing(mounts):
    want = sources(3)
    m = mounts.new('ro')
    for name, data in want.items():
        with open(m.p(name), 'wb') as f:
            f.write(data)
    m.flush()
    m.unmount()
    before = snapshot(m.backing)
    assert 'tpdefs.db' in before
    m.opts.append('ro')
    m.mount()
    for name, data in want.items():
        assert read(m.p(name)) == data, name
    assert_erofs(open, m.p('new.bin'), 'wb')
    assert_erofs(open, m.p(next(iter(want))), 'r+b')
    assert_erofs(os.unlink, m.p(next(iter(want))))
    assert_erofs(os.mkdir, m.p('d'))
    r = m.admin('gc', m.backing)
    assert r.returncode != 0 and 'read-only' in r.stdout + r.stderr, r.stdout + r.stderr
    r = m.admin('flush', m.backing)
    assert r.returncode == 0, r.stdout + r.stderr   # nothing staged: nothing to do
    assert m.admin('verify', m.backing).returncode == 0
    m.unmount()
    assert snapshot(m.backing) == before, 'a ro mount changed the backing directory'
    m.opts.remove('ro')
    m.mount()
    for name, data in want.items():
        assert read(m.p(name)) == data, name


def test_ro_mount_serves_files_a_killed_daemon_left_staged(mounts):
    want = sources(2)
    # a debounce far longer than the test: the files stay staged until the daemon dies
    m = mounts.new('rostaged', opts=['debounce_ms=600000'])
    for name, data in want.items():
        fd = os.open(m.p(name), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    kill_daemon(m)
    staged = [p for p in snapshot(m.backing) if p.startswith('staging/')]
    assert len(staged) == len(want), staged
    before = snapshot(m.backing)
    m.opts = ['ro']
    m.mount()
    for name, data in want.items():
        assert read(m.p(name)) == data, f'{name}: staged file differs on a ro mount'
    r = m.admin('flush', m.backing)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and 'read-only' in out and 'staged' in out, out
    m.unmount()
    # SQLite's WAL index (-shm, rebuilt from the WAL by any reader) is the one file a reader
    # of a WAL a dead daemon left may rewrite; no stored data changes
    after = snapshot(m.backing)
    assert after.pop('tpdefs.db-shm', None) is not None and before.pop('tpdefs.db-shm')
    assert after == before, 'a ro mount changed the backing directory'
    m.opts = []
    m.mount()                  # read-write: recovery queues the staged files
    m.flush()
    st = m.stats()
    assert not any(e['staged'] for e in st['files']), st['files']
    for name, data in want.items():
        assert read(m.p(name)) == data, name
