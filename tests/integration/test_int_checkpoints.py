"""Checkpoint-specific semantics: rename-over, deleting a base that a later version depends on,
concurrent writers and readers."""
import hashlib
import multiprocessing
import os
import random
import threading
import time

import tpdefs_harness as H

SAMPLE = os.path.join(H.CORPUS, 'gpt_full_state')


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def sample(k):
    return read(os.path.join(SAMPLE, f'ckpt_{k:03d}.pt'))


def test_rename_over(fsm):
    old, new = sample(0), sample(1)
    write(fsm.p('last.ckpt'), old)
    fsm.flush()
    keep = os.open(fsm.p('last.ckpt'), os.O_RDONLY)   # an fd opened before the rename
    try:
        write(fsm.p('.last.ckpt.tmp'), new)
        os.rename(fsm.p('.last.ckpt.tmp'), fsm.p('last.ckpt'))
        assert read(fsm.p('last.ckpt')) == new
        assert os.listdir(fsm.mnt) == ['last.ckpt']
        assert os.stat(fsm.p('last.ckpt')).st_size == len(new)
        # POSIX: the old fd still reads the replaced file's bytes
        assert os.pread(keep, len(old) + 1, 0) == old
    finally:
        os.close(keep)
    fsm.flush()
    assert read(fsm.p('last.ckpt')) == new
    # a second rename-over without an intermediate flush, onto the (stored) new version
    third = sample(2)
    write(fsm.p('.last.ckpt.tmp'), third)
    os.rename(fsm.p('.last.ckpt.tmp'), fsm.p('last.ckpt'))
    assert read(fsm.p('last.ckpt')) == third
    fsm.flush()
    fsm.remount()
    assert read(fsm.p('last.ckpt')) == third
    assert os.listdir(fsm.mnt) == ['last.ckpt']


def test_unlink_base_while_reading_later_version(fsm):
    """ckpt_000..003 stored as a delta chain; delete the bases while ckpt_003 is being read."""
    data = {k: sample(k) for k in range(4)}
    for k in range(4):
        write(fsm.p(f'ckpt_{k:03d}.pt'), data[k])
    fsm.flush()
    f = open(fsm.p('ckpt_003.pt'), 'rb')
    try:
        half = len(data[3]) // 2
        first = f.read(half)
        for k in range(3):
            os.unlink(fsm.p(f'ckpt_{k:03d}.pt'))
        rest = f.read()
    finally:
        f.close()
    assert first + rest == data[3]
    assert os.listdir(fsm.mnt) == ['ckpt_003.pt']
    assert read(fsm.p('ckpt_003.pt')) == data[3]
    fsm.flush()
    assert read(fsm.p('ckpt_003.pt')) == data[3]
    fsm.remount()
    assert read(fsm.p('ckpt_003.pt')) == data[3]
    # the next version is still writable and readable with its old base gone
    write(fsm.p('ckpt_004.pt'), sample(4))
    fsm.flush()
    fsm.remount()
    assert read(fsm.p('ckpt_004.pt')) == sample(4)
    assert read(fsm.p('ckpt_003.pt')) == data[3]


def test_unlink_base_before_flush(fsm):
    """Delete the predecessor right after the new version is closed (encoder may be busy)."""
    for k in range(3):
        write(fsm.p(f'ckpt_{k:03d}.pt'), sample(k))
        if k:
            os.unlink(fsm.p(f'ckpt_{k - 1:03d}.pt'))
    fsm.flush()
    assert read(fsm.p('ckpt_002.pt')) == sample(2)
    fsm.remount()
    assert os.listdir(fsm.mnt) == ['ckpt_002.pt']
    assert read(fsm.p('ckpt_002.pt')) == sample(2)


def _mutated(base, seed, frac=0.01):
    """A 'next checkpoint': base with ~frac of its 4-byte words changed."""
    r = random.Random(seed)
    b = bytearray(base)
    for _ in range(int(len(b) / 4 * frac)):
        i = r.randrange(0, len(b) - 4) & ~3
        b[i:i + 4] = r.randbytes(4)
    return bytes(b)


def _writer_proc(mnt, rank, nfiles, q):
    try:
        base = random.Random(rank).randbytes(700_000)
        out = {}
        for k in range(nfiles):
            data = _mutated(base, rank * 1000 + k)
            p = os.path.join(mnt, f'proc{rank}', f'ckpt_{k:03d}.bin')
            with open(p, 'wb') as f:
                for i in range(0, len(data), 65536):
                    f.write(data[i:i + 65536])
            out[p] = hashlib.sha256(data).hexdigest()
            base = data
        q.put(('ok', out))
    except Exception as e:  # noqa: BLE001
        q.put(('err', repr(e)))


def test_concurrent_writers_and_readers(fsm):
    errors, expect, lock = [], {}, threading.Lock()
    done = threading.Event()

    def writer(t):
        try:
            os.mkdir(fsm.p(f'thr{t}'))
            base = random.Random(100 + t).randbytes(900_000)
            for k in range(6):
                data = _mutated(base, t * 100 + k)
                p = fsm.p(f'thr{t}', f'ckpt_{k:03d}.bin')
                with open(p, 'wb') as f:
                    f.write(data)
                with lock:
                    expect[p] = hashlib.sha256(data).hexdigest()
                base = data
        except Exception as e:  # noqa: BLE001
            errors.append(f'writer {t}: {e!r}')

    def reader(t):
        r = random.Random(t)
        n = 0
        while not done.is_set() or n == 0:
            with lock:
                items = list(expect.items())
            if not items:
                time.sleep(0.01)
                continue
            p, h = r.choice(items)
            try:
                got = hashlib.sha256(read(p)).hexdigest()
            except Exception as e:  # noqa: BLE001
                errors.append(f'reader {t}: {p}: {e!r}')
                return
            if got != h:
                errors.append(f'reader {t}: {p} differs')
                return
            n += 1

    for r in range(4):
        os.mkdir(fsm.p(f'proc{r}'))
    ctx = multiprocessing.get_context('fork')
    q = ctx.Queue()
    procs = [ctx.Process(target=_writer_proc, args=(fsm.mnt, r, 5, q)) for r in range(4)]
    writers = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
    readers = [threading.Thread(target=reader, args=(t,)) for t in range(3)]
    for x in procs + writers + readers:
        x.start()
    for w in writers:
        w.join(timeout=120)
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    done.set()
    for r in readers:
        r.join(timeout=60)
    for kind, val in results:
        if kind == 'err':
            errors.append('process writer: ' + val)
        else:
            expect.update(val)
    assert not errors, '\n'.join(errors)
    assert len(expect) == 3 * 6 + 4 * 5

    def verify(when):
        bad = [p for p, h in expect.items() if H.sha256_file(p) != h]
        assert not bad, f'{when}: differ: {bad}'
    verify('after concurrent writes')
    # concurrent reads of the stored versions from several threads at once
    fsm.flush()
    errs = []

    def check(paths):
        for p in paths:
            if H.sha256_file(p) != expect[p]:
                errs.append(p)
    paths = sorted(expect)
    ts = [threading.Thread(target=check, args=(paths[i::4],)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not errs, f'after flush, concurrent reads differ: {errs}'
    fsm.remount()
    verify('after remount')


def test_modify_while_encoding(fsm):
    """Change a file again right after close, around the encoder's debounce/encode window: the
    last bytes written win, whatever the timing."""
    r = random.Random(3)
    base = sample(0)
    cur = bytearray(base)
    for k, delay in enumerate([0, 0.05, 0.3, 0.69, 0.72, 0.8, 1.0, 1.5]):
        with open(fsm.p('ckpt.pt'), 'wb') as f:
            f.write(cur)
        time.sleep(delay)
        with open(fsm.p('ckpt.pt'), 'r+b') as f:
            for _ in range(20):
                off = r.randrange(0, len(cur) - 64)
                patch = r.randbytes(64)
                f.seek(off)
                f.write(patch)
                cur[off:off + 64] = patch
        assert read(fsm.p('ckpt.pt')) == bytes(cur), f'round {k} (delay {delay}s)'
    fsm.flush()
    assert read(fsm.p('ckpt.pt')) == bytes(cur)
    fsm.remount()
    assert read(fsm.p('ckpt.pt')) == bytes(cur)


def test_backpressure_small_staging_limit(mounts):
    """Writers wait for the encoder when staging_limit is small; nothing deadlocks or changes."""
    m = mounts.new('bp', opts=['staging_limit=2M', 'debounce_ms=0'])
    want = {}
    t0 = time.time()
    for k in range(8):
        data = sample(k % 10)
        with open(m.p(f'ckpt_{k:03d}.pt'), 'wb') as f:
            f.write(data)
        want[f'ckpt_{k:03d}.pt'] = data
    H.report(f'backpressure: 8 x {len(sample(0))} B with staging_limit=2M in '
             f'{time.time() - t0:.1f}s')
    for n, d in want.items():
        assert read(m.p(n)) == d, n
    m.flush()
    m.remount()
    for n, d in want.items():
        assert read(m.p(n)) == d, n


def test_flush_while_file_open_for_writing(fsm):
    """flush encodes closed files; a file still open for writing keeps working through its fd
    (found by the random differential test: pwrite after flush gave EBADF)."""
    data = bytearray(sample(0))
    write(fsm.p('ckpt.pt'), data)
    fsm.flush()
    fd = os.open(fsm.p('ckpt.pt'), os.O_RDWR)
    try:
        os.pwrite(fd, b'C', 5)
        data[5:6] = b'C'
        write(fsm.p('other'), b'other')
        fsm.flush()
        os.pwrite(fd, b'DD', 1000)
        data[1000:1002] = b'DD'
        assert os.pread(fd, len(data) + 1, 0) == bytes(data)
        os.pwrite(fd, b'E' * 10, len(data))
        data += b'E' * 10
        assert os.fstat(fd).st_size == len(data)
    finally:
        os.close(fd)
    assert read(fsm.p('ckpt.pt')) == bytes(data)
    fsm.flush()
    fsm.remount()
    assert read(fsm.p('ckpt.pt')) == bytes(data)
    assert read(fsm.p('other')) == b'other'
