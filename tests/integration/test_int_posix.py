"""POSIX behaviour through the mount, compared with a local directory (ext4/tmpfs under /tmp)
where the expected result is "as on a local filesystem"."""
import ctypes
import ctypes.util
import errno
import mmap
import os
import stat

import pytest

import tpdefs_harness as H

MiB = 1 << 20


def rnd(n, seed=0):
    import random
    return random.Random(seed).randbytes(n)


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def err_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except OSError as e:
        return e.errno
    return 0


@pytest.fixture
def both(mounts):
    """(mount, ref): a fresh tpdefs mount and a local reference directory."""
    return mounts.new('posix'), mounts.localdir('ref')


def same_errno(m, ref, fn, want=None):
    """Run fn(root) on the mount and on the local dir; errno must match (and equal want)."""
    em, er = err_of(fn, m.mnt), err_of(fn, ref)
    assert em == er, f'tpdefs errno {errno.errorcode.get(em, em)} vs local ' \
                     f'{errno.errorcode.get(er, er)}'
    if want is not None:
        assert em == want, f'expected {errno.errorcode[want]}, got {errno.errorcode.get(em, em)}'


def test_basic_write_read_stat(fsm):
    data = rnd(3 * MiB + 123)
    write(fsm.p('a.bin'), data)
    st = os.stat(fsm.p('a.bin'))
    assert stat.S_ISREG(st.st_mode) and st.st_size == len(data) and st.st_nlink == 1
    assert read(fsm.p('a.bin')) == data
    write(fsm.p('empty'), b'')
    assert os.stat(fsm.p('empty')).st_size == 0 and read(fsm.p('empty')) == b''
    fsm.flush()
    assert read(fsm.p('a.bin')) == data and read(fsm.p('empty')) == b''
    fsm.remount()
    assert read(fsm.p('a.bin')) == data and read(fsm.p('empty')) == b''
    assert os.stat(fsm.p('a.bin')).st_size == len(data)


def test_partial_reads_at_offsets(fsm):
    data = rnd(5 * MiB + 77, 1)
    write(fsm.p('f'), data)
    fsm.flush()
    fd = os.open(fsm.p('f'), os.O_RDONLY)
    try:
        for off, n in [(0, 1), (1, 4095), (4095, 2), (MiB - 3, 7), (2 * MiB + 1, MiB + 5),
                       (len(data) - 10, 100), (len(data), 10), (len(data) + 5000, 10)]:
            assert os.pread(fd, n, off) == data[off:off + n], (off, n)
    finally:
        os.close(fd)


def test_o_append(fsm):
    p = fsm.p('log')
    write(p, b'head\n')
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    fd2 = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b'one\n')
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b'two\n')          # O_APPEND ignores the seek
        os.write(fd2, b'three\n')       # a second appender lands after the first
        os.pwrite(fd, b'', 0)
    finally:
        os.close(fd)
        os.close(fd2)
    assert read(p) == b'head\none\ntwo\nthree\n'
    fsm.flush()
    with open(p, 'ab') as f:
        f.write(b'four\n')
    assert read(p) == b'head\none\ntwo\nthree\nfour\n'
    fsm.remount()
    assert read(p) == b'head\none\ntwo\nthree\nfour\n'


def test_sparse_and_holes(fsm):
    p = fsm.p('sparse')
    fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.pwrite(fd, b'tail', 8 * MiB + 3)
        os.pwrite(fd, b'mid', 3 * MiB)
    finally:
        os.close(fd)
    want = bytearray(8 * MiB + 7)
    want[8 * MiB + 3:] = b'tail'
    want[3 * MiB:3 * MiB + 3] = b'mid'
    assert os.stat(p).st_size == len(want)
    assert read(p) == bytes(want)
    fsm.flush()
    assert read(p) == bytes(want)
    # extend a stored file by writing past its end
    with open(p, 'r+b') as f:
        f.seek(10 * MiB)
        f.write(b'x')
    want += bytes(10 * MiB - len(want)) + b'x'
    assert read(p) == bytes(want)
    fsm.remount()
    assert read(p) == bytes(want)


def test_truncate_up_down(fsm):
    p = fsm.p('t')
    data = rnd(200_000, 2)
    write(p, data)
    os.truncate(p, 50_000)
    assert read(p) == data[:50_000]
    os.truncate(p, 300_000)
    assert read(p) == data[:50_000] + bytes(250_000)
    fsm.flush()
    # truncate a stored file, down then up through an fd
    with open(p, 'r+b') as f:
        f.truncate(1234)
        assert os.fstat(f.fileno()).st_size == 1234
        f.truncate(5000)
    assert read(p) == data[:1234] + bytes(5000 - 1234)
    os.truncate(p, 0)
    assert read(p) == b'' and os.stat(p).st_size == 0
    write(p, data)
    fsm.flush()
    with open(p, 'wb') as f:   # O_TRUNC on a stored file
        f.write(b'new')
    assert read(p) == b'new'
    fsm.remount()
    assert read(p) == b'new'


def test_overwrite_part_of_stored_file(fsm):
    p = fsm.p('big')
    data = bytearray(rnd(4 * MiB + 999, 3))
    write(p, data)
    fsm.flush()
    patches = [(MiB - 7, rnd(1000, 4)), (0, b'HEAD'), (len(data) - 3, b'TAILXX'),
               (2 * MiB, rnd(300_000, 5))]
    with open(p, 'r+b') as f:
        for off, b in patches:
            f.seek(off)
            f.write(b)
            data[off:off + len(b)] = b
    assert read(p) == bytes(data)
    fsm.flush()
    assert read(p) == bytes(data)
    fsm.remount()
    assert read(p) == bytes(data)
    assert os.stat(p).st_size == len(data)


def test_mkdir_rmdir_enotempty(both):
    m, ref = both
    for root in (m.mnt, ref):
        os.makedirs(os.path.join(root, 'd', 'e'))
        write(os.path.join(root, 'd', 'f'), b'x')
    same_errno(m, ref, lambda r: os.rmdir(os.path.join(r, 'd')), errno.ENOTEMPTY)
    same_errno(m, ref, lambda r: os.mkdir(os.path.join(r, 'd')), errno.EEXIST)
    same_errno(m, ref, lambda r: os.mkdir(os.path.join(r, 'd', 'f')), errno.EEXIST)
    same_errno(m, ref, lambda r: os.rmdir(os.path.join(r, 'd', 'f')), errno.ENOTDIR)
    same_errno(m, ref, lambda r: os.rmdir(os.path.join(r, 'nope')), errno.ENOENT)
    same_errno(m, ref, lambda r: os.mkdir(os.path.join(r, 'nope', 'x')), errno.ENOENT)
    st = os.stat(m.p('d'))
    assert stat.S_ISDIR(st.st_mode)
    assert st.st_nlink >= 2
    os.rmdir(m.p('d', 'e'))
    os.unlink(m.p('d', 'f'))
    os.rmdir(m.p('d'))
    assert not os.path.exists(m.p('d'))
    assert os.listdir(m.mnt) == []


def test_errors_like_local(both):
    m, ref = both
    for root in (m.mnt, ref):
        write(os.path.join(root, 'file'), b'abc')
        os.makedirs(os.path.join(root, 'dir', 'sub'))
        os.mkdir(os.path.join(root, 'empty'))
        write(os.path.join(root, 'dir', 'sub', 'x'), b'x')
    j = os.path.join
    cases = [
        ('open missing', lambda r: os.open(j(r, 'missing'), os.O_RDONLY), errno.ENOENT),
        ('create excl', lambda r: os.open(j(r, 'file'), os.O_CREAT | os.O_EXCL | os.O_WRONLY),
         errno.EEXIST),
        ('file as dir', lambda r: os.open(j(r, 'file', 'x'), os.O_RDONLY), errno.ENOTDIR),
        ('create under file', lambda r: os.open(j(r, 'file', 'x'), os.O_CREAT | os.O_WRONLY),
         errno.ENOTDIR),
        ('open dir for write', lambda r: os.open(j(r, 'dir'), os.O_WRONLY), errno.EISDIR),
        ('unlink dir', lambda r: os.unlink(j(r, 'dir')), errno.EISDIR),
        ('unlink missing', lambda r: os.unlink(j(r, 'missing')), errno.ENOENT),
        ('rename missing', lambda r: os.rename(j(r, 'missing'), j(r, 'y')), errno.ENOENT),
        ('rename file over dir', lambda r: os.rename(j(r, 'file'), j(r, 'empty')), errno.EISDIR),
        ('rename dir over file', lambda r: os.rename(j(r, 'empty'), j(r, 'file')), errno.ENOTDIR),
        ('rename dir over nonempty dir', lambda r: os.rename(j(r, 'empty'), j(r, 'dir')),
         errno.ENOTEMPTY),
        ('rename dir into itself', lambda r: os.rename(j(r, 'dir'), j(r, 'dir', 'sub', 'in')),
         errno.EINVAL),
        ('link existing', lambda r: os.link(j(r, 'file'), j(r, 'dir', 'sub', 'x')), errno.EEXIST),
        ('symlink existing', lambda r: os.symlink('t', j(r, 'file')), errno.EEXIST),
        ('readlink on file', lambda r: os.readlink(j(r, 'file')), errno.EINVAL),
        ('listdir file', lambda r: os.listdir(j(r, 'file')), errno.ENOTDIR),
        ('truncate dir', lambda r: os.truncate(j(r, 'dir'), 0), errno.EISDIR),
        ('rename noreplace', lambda r: _renameat2(j(r, 'file'), j(r, 'dir', 'sub', 'x'), 1),
         errno.EEXIST),
    ]
    bad = []
    for name, fn, want in cases:
        em, er = err_of(fn, m.mnt), err_of(fn, ref)
        if em != er or em != want:
            bad.append(f'{name}: tpdefs {errno.errorcode.get(em, em)}, local '
                       f'{errno.errorcode.get(er, er)}, expected {errno.errorcode[want]}')
    assert not bad, '\n'.join(bad)
    # nothing above may have changed the tree
    assert read(m.p('file')) == b'abc' and read(m.p('dir', 'sub', 'x')) == b'x'
    assert sorted(os.listdir(m.mnt)) == sorted(os.listdir(ref))


def _renameat2(a, b, flags):
    libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
    r = libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), ctypes.c_uint(flags))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def test_readdir_listing(fsm):
    names = set()
    os.mkdir(fsm.p('many'))
    for i in range(300):
        n = f'file-{i:04d}-' + 'x' * (i % 100)
        write(fsm.p('many', n), str(i).encode())
        names.add(n)
    os.mkdir(fsm.p('many', 'subdir'))
    os.symlink('file-0001-x', fsm.p('many', 'link'))
    assert set(os.listdir(fsm.p('many'))) == names | {'subdir', 'link'}
    kinds = {e.name: (e.is_dir(follow_symlinks=False), e.is_symlink(), e.is_file(follow_symlinks=False))
             for e in os.scandir(fsm.p('many'))}
    assert kinds['subdir'] == (True, False, False)
    assert kinds['link'] == (False, True, False)
    assert kinds['file-0000-'] == (False, False, True)
    # inode numbers from readdir match stat
    for e in list(os.scandir(fsm.p('many')))[:50]:
        assert e.inode() == os.stat(e.path, follow_symlinks=False).st_ino
    fsm.remount()
    assert set(os.listdir(fsm.p('many'))) == names | {'subdir', 'link'}
    for i in (0, 150, 299):
        n = f'file-{i:04d}-' + 'x' * (i % 100)
        assert read(fsm.p('many', n)) == str(i).encode()


def test_symlink_readlink(fsm):
    write(fsm.p('target'), b'content')
    os.symlink('target', fsm.p('rel'))
    odd = 'some/dir with spaces/../\u00e9t\u00e9\n' + 'y' * 300
    os.symlink(odd, fsm.p('dangling'))
    assert os.readlink(fsm.p('rel')) == 'target'
    assert os.readlink(fsm.p('dangling')) == odd
    lst = os.lstat(fsm.p('dangling'))
    assert stat.S_ISLNK(lst.st_mode) and lst.st_size == len(odd.encode())
    assert read(fsm.p('rel')) == b'content'
    assert not os.path.exists(fsm.p('dangling'))
    fsm.remount()
    assert os.readlink(fsm.p('rel')) == 'target' and os.readlink(fsm.p('dangling')) == odd
    assert read(fsm.p('rel')) == b'content'


def test_hard_link(fsm):
    data = rnd(300_000, 6)
    write(fsm.p('a'), data)
    os.mkdir(fsm.p('d'))
    os.link(fsm.p('a'), fsm.p('d', 'b'))
    sa, sb = os.stat(fsm.p('a')), os.stat(fsm.p('d', 'b'))
    assert sa.st_ino == sb.st_ino and sa.st_nlink == 2 and sb.st_nlink == 2
    assert read(fsm.p('d', 'b')) == data
    with open(fsm.p('d', 'b'), 'r+b') as f:   # a write through one name shows in the other
        f.write(b'CHANGED')
    data = b'CHANGED' + data[7:]
    assert read(fsm.p('a')) == data
    fsm.flush()
    fsm.remount()
    assert read(fsm.p('a')) == data and read(fsm.p('d', 'b')) == data
    assert os.stat(fsm.p('a')).st_nlink == 2
    assert os.stat(fsm.p('a')).st_ino == os.stat(fsm.p('d', 'b')).st_ino
    os.unlink(fsm.p('a'))
    assert os.stat(fsm.p('d', 'b')).st_nlink == 1
    assert read(fsm.p('d', 'b')) == data
    fsm.remount()
    assert read(fsm.p('d', 'b')) == data and not os.path.exists(fsm.p('a'))


def test_chmod_chown_utime(fsm):
    p = fsm.p('f')
    write(p, b'x' * 1000)
    os.mkdir(fsm.p('d'))
    os.chmod(p, 0o640)
    os.chmod(fsm.p('d'), 0o711)
    os.chown(p, 1234, 5678)
    ns = (1_600_000_000_123_456_789, 1_500_000_000_987_654_321)
    os.utime(p, ns=ns)
    fd = os.open(fsm.p('g'), os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)

    def check():
        st = os.stat(p)
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert stat.S_IMODE(os.stat(fsm.p('d')).st_mode) == 0o711
        assert stat.S_IMODE(os.stat(fsm.p('g')).st_mode) == 0o600 & ~_umask()
        assert (st.st_uid, st.st_gid) == (1234, 5678)
        assert st.st_atime_ns == ns[0] and st.st_mtime_ns == ns[1]
    check()
    fsm.flush()
    check()
    fsm.remount()
    check()
    # a write updates mtime (to about now)
    import time
    before = time.time_ns()
    with open(p, 'ab') as f:
        f.write(b'y')
    st = os.stat(p)
    assert st.st_mtime_ns >= before - 2_000_000_000
    assert st.st_ctime_ns >= before - 2_000_000_000


def _umask():
    u = os.umask(0)
    os.umask(u)
    return u


def test_statfs(fsm):
    write(fsm.p('f'), rnd(MiB, 7))
    sv = os.statvfs(fsm.mnt)
    assert sv.f_bsize > 0 and sv.f_blocks > 0
    assert 0 <= sv.f_bavail <= sv.f_bfree <= sv.f_blocks
    assert sv.f_namemax == 255


def test_user_xattrs(fsm):
    p = fsm.p('x')
    write(p, b'data')
    os.setxattr(p, 'user.alpha', b'1')
    os.setxattr(p, 'user.beta', b'\x00binary\xff' * 20)
    assert os.getxattr(p, 'user.alpha') == b'1'
    assert os.getxattr(p, 'user.beta') == b'\x00binary\xff' * 20
    assert {'user.alpha', 'user.beta'} <= set(os.listxattr(p))
    assert err_of(os.getxattr, p, 'user.missing') == errno.ENODATA
    assert err_of(os.setxattr, p, 'user.alpha', b'2', os.XATTR_CREATE) == errno.EEXIST
    assert err_of(os.setxattr, p, 'user.gamma', b'2', os.XATTR_REPLACE) == errno.ENODATA
    # ERANGE from the raw calls with a too-small buffer; size 0 returns the needed size
    libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
    libc.getxattr.restype = ctypes.c_ssize_t
    libc.listxattr.restype = ctypes.c_ssize_t
    buf = ctypes.create_string_buffer(4)
    assert libc.getxattr(os.fsencode(p), b'user.beta', None, ctypes.c_size_t(0)) == 160
    assert libc.getxattr(os.fsencode(p), b'user.beta', buf, ctypes.c_size_t(4)) == -1
    assert ctypes.get_errno() == errno.ERANGE
    need = libc.listxattr(os.fsencode(p), None, ctypes.c_size_t(0))
    assert need >= len(b'user.alpha\0user.beta\0')
    assert libc.listxattr(os.fsencode(p), buf, ctypes.c_size_t(2)) == -1
    assert ctypes.get_errno() == errno.ERANGE
    os.removexattr(p, 'user.alpha')
    assert err_of(os.getxattr, p, 'user.alpha') == errno.ENODATA
    assert err_of(os.removexattr, p, 'user.alpha') == errno.ENODATA
    fsm.flush()
    fsm.remount()
    assert os.getxattr(p, 'user.beta') == b'\x00binary\xff' * 20
    assert 'user.alpha' not in os.listxattr(p)
    assert read(p) == b'data'


def test_mmap_read_write(fsm):
    p = fsm.p('mm')
    data = bytearray(rnd(2 * MiB + 500, 8))
    write(p, data)
    fsm.flush()
    with open(p, 'rb') as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert mm[:] == bytes(data)
        assert mm[MiB - 5:MiB + 5] == bytes(data[MiB - 5:MiB + 5])
    with open(p, 'r+b') as f:
        mm = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED,
                       prot=mmap.PROT_READ | mmap.PROT_WRITE)
        mm[10:20] = b'0123456789'
        mm[MiB + 3:MiB + 3 + 4096] = b'Z' * 4096
        mm[-4:] = b'END!'
        mm.flush()   # msync
        mm.close()
    data[10:20] = b'0123456789'
    data[MiB + 3:MiB + 3 + 4096] = b'Z' * 4096
    data[-4:] = b'END!'
    assert read(p) == bytes(data)
    fsm.flush()
    fsm.remount()
    assert read(p) == bytes(data)


def test_unlink_open_file(fsm):
    p = fsm.p('gone')
    data = rnd(MiB + 3, 9)
    write(p, data)
    fsm.flush()
    fd = os.open(p, os.O_RDWR)
    try:
        os.unlink(p)
        assert not os.path.exists(p)
        assert 'gone' not in os.listdir(fsm.mnt)
        assert os.pread(fd, len(data) + 10, 0) == data
        os.pwrite(fd, b'still', 0)
        assert os.pread(fd, 5, 0) == b'still'
        assert os.fstat(fd).st_nlink == 0
        write(p, b'a new file by the same name')
        assert read(p) == b'a new file by the same name'
        assert os.pread(fd, 10, 5) == data[5:15]
    finally:
        os.close(fd)
    fsm.flush()
    fsm.remount()
    assert read(p) == b'a new file by the same name'
    assert sorted(os.listdir(fsm.mnt)) == ['gone']


def test_rename_dir(fsm):
    os.makedirs(fsm.p('a', 'b', 'c'))
    data = rnd(100_000, 10)
    write(fsm.p('a', 'b', 'c', 'f'), data)
    write(fsm.p('a', 'g'), b'g')
    fsm.flush()
    os.rename(fsm.p('a'), fsm.p('z'))
    assert not os.path.exists(fsm.p('a'))
    assert read(fsm.p('z', 'b', 'c', 'f')) == data and read(fsm.p('z', 'g')) == b'g'
    os.mkdir(fsm.p('other'))
    os.rename(fsm.p('z', 'b'), fsm.p('other', 'b2'))
    assert read(fsm.p('other', 'b2', 'c', 'f')) == data
    os.mkdir(fsm.p('emptydst'))
    os.rename(fsm.p('z'), fsm.p('emptydst'))   # over an empty dir is allowed
    assert read(fsm.p('emptydst', 'g')) == b'g'
    fsm.remount()
    assert sorted(os.listdir(fsm.mnt)) == ['emptydst', 'other']
    assert read(fsm.p('other', 'b2', 'c', 'f')) == data


def test_odd_names(fsm):
    names = [b'with space', b' lead and trail ', b'new\nline', b'tab\there',
             '\u00fcml\u00e4ut-\u65e5\u672c-\U0001f600'.encode(), b'\xff\xfe not utf8 \x80',
             b'-dash', b'...', b'a' * 255, 'é'.encode() * 127 + b'x']
    for i, n in enumerate(names):
        write(os.path.join(os.fsencode(fsm.mnt), n), b'%d' % i)
    assert set(os.listdir(os.fsencode(fsm.mnt))) == set(names)
    too_long = os.path.join(os.fsencode(fsm.mnt), b'b' * 256)
    assert err_of(write, too_long, b'x') == errno.ENAMETOOLONG
    assert err_of(os.mkdir, too_long) == errno.ENAMETOOLONG
    assert err_of(os.stat, too_long) == errno.ENAMETOOLONG
    assert err_of(os.rename, os.path.join(os.fsencode(fsm.mnt), names[0]), too_long) == \
        errno.ENAMETOOLONG
    fsm.remount()
    assert set(os.listdir(os.fsencode(fsm.mnt))) == set(names)
    for i, n in enumerate(names):
        assert read(os.path.join(os.fsencode(fsm.mnt), n)) == b'%d' % i


def test_fsync_and_data_visible_across_fds(fsm):
    p = fsm.p('s')
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b'a' * 100_000)
        os.fsync(fd)
        os.fdatasync(fd)
        assert read(p) == b'a' * 100_000   # visible through another fd while still open
        os.write(fd, b'b')
    finally:
        os.close(fd)
    assert read(p) == b'a' * 100_000 + b'b'


def test_rdonly_o_trunc_truncates_like_local(both):
    """open(O_RDONLY | O_TRUNC) truncates on Linux (the caller needs write permission): as on
    a local directory, for a staged and for a stored file, and the empty file is what stays."""
    m, ref = both
    data = rnd(300_000, 9)
    for root in (m.mnt, ref):
        write(os.path.join(root, 'staged'), data)
        write(os.path.join(root, 'stored'), data)
    m.flush()
    for name in ('staged', 'stored'):
        got = {}
        for root in (m.mnt, ref):
            p = os.path.join(root, name)
            before = os.stat(p)
            fd = os.open(p, os.O_RDONLY | os.O_TRUNC)
            try:
                got[root] = (os.fstat(fd).st_size, os.read(fd, 10))
            finally:
                os.close(fd)
            after = os.stat(p)
            assert after.st_size == 0 and after.st_mtime_ns >= before.st_mtime_ns, (root, name)
        assert got[m.mnt] == got[ref] == (0, b''), (name, got)
    m.flush()
    m.remount()
    assert read(m.p('staged')) == b'' and read(m.p('stored')) == b''
