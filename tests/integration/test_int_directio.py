"""Write-only handles are opened direct_io (fs/ops.c open_handle: their writes bypass the mount's
page cache). Check what that must not change: readers and mmaps that cached the file see a write
as soon as write() returns, O_APPEND and unaligned writes land where they should, and O_RDWR
handles (page cache, mmap) work as before."""
import mmap
import os
import random


def rnd(n, seed):
    return random.Random(seed).randbytes(n)


def test_cached_reader_sees_direct_write(fsm):
    p = fsm.p('coh')
    old = rnd(3 * 65536, 1)
    with open(p, 'wb') as f:
        f.write(old)
    r = os.open(p, os.O_RDONLY)
    try:
        assert os.pread(r, len(old), 0) == old                 # now in the page cache
        mm = mmap.mmap(r, len(old), prot=mmap.PROT_READ)
        assert mm[:16] == old[:16]
        w = os.open(p, os.O_WRONLY)
        try:
            os.pwrite(w, b'B' * 5000, 4000)                    # unaligned, spans two pages
            want = old[:4000] + b'B' * 5000 + old[9000:]
            assert os.pread(r, len(old), 0) == want           # before the writer closes
            assert mm[:] == want
        finally:
            os.close(w)
        assert os.pread(r, len(old), 0) == want
        mm.close()
    finally:
        os.close(r)
    assert open(p, 'rb').read() == want


def test_append_and_rdwr_mmap(fsm):
    p = fsm.p('app')
    a, b = rnd(100_001, 2), rnd(70_003, 3)
    with open(p, 'wb') as f:
        f.write(a)
    with open(p, 'ab') as f:                                   # O_WRONLY | O_APPEND
        f.write(b)
    assert open(p, 'rb').read() == a + b
    fd = os.open(p, os.O_RDWR)                                 # page-cache handle: mmap works
    try:
        mm = mmap.mmap(fd, len(a) + len(b))
        mm[10:20] = b'x' * 10
        mm.flush()
        mm.close()
    finally:
        os.close(fd)
    assert open(p, 'rb').read() == a[:10] + b'x' * 10 + a[20:] + b
