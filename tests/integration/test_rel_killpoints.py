"""Deterministic kill points: strace injects SIGKILL into the daemon at a chosen system call, so
windows too small for timing-based kills (between truncating the staging file and committing the
new size) are hit every time."""
import os
import shutil
import subprocess
import time

import pytest

import tpdefs_harness as H
from test_rel_00_util import detach, rand_bytes, read, seeded, write_file


def inject_kill(pid, syscall, nth=1, timeout=20):
    """Trace every thread of pid; the nth `syscall` any of them makes gets SIGKILL (on entry:
    the call itself does not run)."""
    tids = [int(t) for t in os.listdir(f'/proc/{pid}/task')]
    args = ['strace', '-f', '-qq', '-o', '/dev/null', '-e', f'trace={syscall}', '-e',
            f'inject={syscall}:error=EIO:signal=KILL:when={nth}']
    for t in tids:
        args += ['-p', str(t)]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if p.poll() is not None:
            pytest.skip(f'strace exited {p.returncode}')
        ok = True
        for t in tids:
            try:
                with open(f'/proc/{pid}/task/{t}/status') as f:
                    tracer = [ln for ln in f if ln.startswith('TracerPid:')][0].split()[1]
                ok &= tracer != '0'
            except OSError:
                pass
        if ok:
            time.sleep(0.1)
            return p
        time.sleep(0.05)
    p.kill()
    pytest.skip('strace did not attach')


def finish(p, m, timeout=20):
    deadline = time.time() + timeout
    while any(H.pid_alive(x) for x in m.pids) and time.time() < deadline:
        time.sleep(0.05)
    alive = any(H.pid_alive(x) for x in m.pids)
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
    assert not alive, 'the injected SIGKILL did not kill the daemon'
    detach(m)
    m.pids = []


@pytest.mark.parametrize('nth', [1, 2])
@pytest.mark.parametrize('newsize', [0, 123_457])
def test_kill_between_truncate_and_commit(mounts, newsize, nth):
    """truncate(2) of a closed, still staged file; the daemon dies right after truncating its
    staging file (at the next fsync): the file must be the old bytes or the truncated ones,
    never the old size over zeros."""
    if shutil.which('strace') is None:
        pytest.skip('strace not installed')
    m = mounts.new('tk', opts=['debounce_ms=600000'])
    old = rand_bytes(seeded(f'tk{newsize}'), 400_000)
    write_file(m.p('f'), old)
    pid = H.daemon_pids(m.mnt)[0]
    # the daemon fsyncs before and after the truncate: kill at each (the file is the only
    # thing being changed; SQLite syncs its WAL with fdatasync)
    p = inject_kill(pid, 'fsync', nth)
    try:
        os.truncate(m.p('f'), newsize)
    except OSError:
        pass
    try:
        finish(p, m, timeout=20 if nth == 1 else 4)
    except AssertionError:
        if nth > 1:
            pytest.skip(f'the daemon made fewer than {nth} fsyncs')
        raise
    m.mount()
    got = read(m.p('f'))
    assert got == old or got == old[:newsize], \
        f'after a kill inside truncate({newsize}): {len(got)} bytes, ' \
        f'{sum(1 for b in got[newsize:] if b == 0)} zero bytes past the new size'


def test_kill_inside_otrunc_open(mounts):
    """open(O_TRUNC) of a closed, still staged file; SIGKILL at the daemon's next fsync."""
    if shutil.which('strace') is None:
        pytest.skip('strace not installed')
    m = mounts.new('ok', opts=['debounce_ms=600000'])
    old = rand_bytes(seeded('ok'), 400_000)
    write_file(m.p('f'), old)
    pid = H.daemon_pids(m.mnt)[0]
    p = inject_kill(pid, 'ftruncate')
    try:
        fd = os.open(m.p('f'), os.O_WRONLY | os.O_TRUNC)
        os.close(fd)
    except OSError:
        pass
    finish(p, m)
    m.mount()
    got = read(m.p('f'))
    assert got == old or got == b'', f'{len(got)} bytes after a kill inside open(O_TRUNC)'


@pytest.mark.parametrize('syscall,nth', [('fsync', 1), ('rename,renameat,renameat2', 1),
                                         ('unlink,unlinkat', 1), ('fdatasync', 2),
                                         ('rename,renameat,renameat2', 2)])
def test_kill_inside_encode(mounts, syscall, nth):
    """SIGKILL at each step of installing an encoded object (object fsync, rename into place,
    WAL sync of the commit, staging unlink): after the restart every file is exact and the
    encode is redone or kept, nothing is left over, verify passes."""
    if shutil.which('strace') is None:
        pytest.skip('strace not installed')
    from test_rel_00_util import sample_bytes, verify
    m = mounts.new('enc', opts=['debounce_ms=600000'])
    rng = seeded(f'enc-{syscall}-{nth}')
    want = {'a': sample_bytes(0), 'b': rand_bytes(rng, 300_000), 'c': sample_bytes(1)}
    for name, data in want.items():
        write_file(m.p(name), data)
    pid = H.daemon_pids(m.mnt)[0]
    p = inject_kill(pid, syscall, nth)
    fl = subprocess.Popen([H.ADMIN_BIN, 'flush', m.backing], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        finish(p, m, timeout=30)
    finally:
        fl.wait(timeout=60)
    m.mount()
    for name, data in want.items():
        assert read(m.p(name)) == data, f'{name} differs after a kill at {syscall} #{nth}'
    m.flush()
    m.unmount()
    for d in ('staging', 'tmp'):
        left = os.listdir(os.path.join(m.backing, d))
        assert not left, f'{d} not empty after flush + unmount: {left}'
    verify(m)
    m.mount()
    for name, data in want.items():
        assert read(m.p(name)) == data, f'{name} differs after remount'
