"""Corruption is reported as EIO (never returned as data); a killed daemon loses nothing that was
fsync'd; foreground mode (-f)."""
import errno
import os
import random
import signal
import subprocess
import time

import tpdefs_harness as H

SAMPLE = os.path.join(H.CORPUS, 'gpt_bf16_st')


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def is_sqlite(path):
    with open(path, 'rb') as f:
        return f.read(16) == b'SQLite format 3\0'


def test_corrupted_store_gives_eio_not_data(fsm):
    want = {}
    for k in range(6):
        name = f'model_{k:03d}.safetensors'
        want[name] = read(os.path.join(SAMPLE, name))
        with open(fsm.p(name), 'wb') as f:
            f.write(want[name])
    fsm.flush()
    fsm.unmount()
    # flip bytes in the middle of every data file of the store (not the SQLite metadata)
    victims = []
    for dp, _, fns in os.walk(fsm.backing):
        for fn in fns:
            p = os.path.join(dp, fn)
            if os.path.getsize(p) > 4096 and not is_sqlite(p) and not fn.endswith(('-wal', '-shm',
                                                                                  '-journal')):
                victims.append(p)
    assert victims, f'no data files found in {fsm.backing}: {os.listdir(fsm.backing)}'
    r = random.Random(1)
    for p in victims:
        size = os.path.getsize(p)
        with open(p, 'r+b') as f:
            for off in sorted(r.randrange(size // 4, size) for _ in range(8)):
                f.seek(off)
                b = f.read(1)
                f.seek(off)
                f.write(bytes([b[0] ^ 0x5A]))
    fsm.mount()
    eio, ok = [], []
    for name, data in want.items():
        try:
            got = read(fsm.p(name))
        except OSError as e:
            assert e.errno == errno.EIO, f'{name}: expected EIO, got {e!r}'
            eio.append(name)
            continue
        assert got == data, f'{name}: corrupted store returned wrong bytes instead of EIO'
        ok.append(name)
    H.report(f'corruption: {len(victims)} store files damaged; EIO on {len(eio)} of {len(want)} '
             f'files, {len(ok)} still exact')
    assert eio, 'every file read back fine although every data file of the store was damaged'
    assert fsm.alive(), 'daemon died reading a corrupted store'


def test_sigkill_keeps_fsynced_files(fsm):
    want = {}
    for k in range(4):
        name = f'model_{k:03d}.safetensors'
        want[name] = read(os.path.join(SAMPLE, name))
        fd = os.open(fsm.p(name), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            os.write(fd, want[name])
            os.fsync(fd)
        finally:
            os.close(fd)
        if k == 1:
            fsm.flush()    # some stored, some only staged
    pids = H.daemon_pids(fsm.mnt)
    assert pids, 'cannot find the daemon process'
    # a file being written when the daemon dies: no promise about its content
    f = open(fsm.p('partial.bin'), 'wb')
    try:
        f.write(os.urandom(100_000))
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    finally:
        try:
            f.close()
        except OSError:
            pass
    deadline = time.time() + 10
    while any(H.pid_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    subprocess.run(['fusermount3', '-u', fsm.mnt], capture_output=True, timeout=30)
    if H.mounted_at(fsm.mnt):
        subprocess.run(['fusermount3', '-u', '-z', fsm.mnt], capture_output=True, timeout=30)
    fsm.pids = []
    fsm.mount()        # a stale lock of a dead daemon must not block the restart
    for name, data in want.items():
        assert read(fsm.p(name)) == data, f'{name}: fsync\'d data lost or changed after SIGKILL'
    fsm.flush()
    fsm.remount()
    for name, data in want.items():
        assert read(fsm.p(name)) == data, f'{name}: differs after restart + flush + remount'


def test_foreground_mode(mounts):
    m = mounts.new('fg', mount=False)
    H.require_binaries()
    with open(m.log, 'ab') as lf:
        p = subprocess.Popen([H.MOUNT_BIN, m.backing, m.mnt, '-f'], stdout=lf, stderr=lf,
                             stdin=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while not H.mounted_at(m.mnt) and time.time() < deadline:
            assert p.poll() is None, f'mount.tpdefs -f exited {p.returncode}: {m.read_log()}'
            time.sleep(0.05)
        assert H.mounted_at(m.mnt), 'not mounted 30 s after starting mount.tpdefs -f'
        assert p.poll() is None, '-f returned although it should stay in the foreground'
        with open(m.p('x'), 'wb') as f:
            f.write(b'foreground')
        assert read(m.p('x')) == b'foreground'
        r = subprocess.run(['fusermount3', '-u', m.mnt], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        assert p.wait(timeout=60) == 0, f'-f daemon exit status {p.returncode} after unmount'
    finally:
        if p.poll() is None:
            subprocess.run(['fusermount3', '-u', m.mnt], capture_output=True, timeout=30)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    m.mount()
    assert read(m.p('x')) == b'foreground'
