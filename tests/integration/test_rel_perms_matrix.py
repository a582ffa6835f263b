"""Permissions whatever the mount options, setgid directories and the control socket (issue 16),
S_ISUID/S_ISGID clearing on every write path (issue 14), with real non-root users.

Users made here: tpdmx-a (supplementary group tpdmx-g) and tpdmx-b (not in it). Each option
combination -- allow_other alone, with default_permissions, ro, `mount -t tpdefs`, an fstab line --
gets the same tree and the same checks: another user's 0600 file is neither readable nor writable,
a root-owned 0755 directory refuses create, mkdir, unlink and rename, a 0640 file is readable by a
member of its group and not by others, chmod/chown/utimes/xattrs follow POSIX, and the owner can
still do what it may. Mode and ownership results of the setgid and S_ISUID/S_ISGID tests are
compared with the same operations on a directory of the host filesystem (ext4 on the test
machine), not only with fixed values."""
import json
import os
import pwd
import grp
import socket
import stat
import subprocess
import sys
import time

import pytest

import tpdefs_harness as H
from test_rel_00_util import need_root
from test_admin import mount_helper  # noqa: F401 - fixture: /usr/sbin/mount.tpdefs for mount(8)

GROUP = 'tpdmx-g'
USER_A = 'tpdmx-a'   # member of GROUP
USER_B = 'tpdmx-b'   # not a member

PROBE = r'''
import errno, json, os, sys, time
os.umask(0o022)
ops = json.loads(sys.argv[1])
res = {}
def run(op, a):
    if op == 'read':
        with open(a[0], 'rb') as f:
            return f.read().decode(errors='replace')
    if op == 'append':
        with open(a[0], 'ab') as f:
            f.write(b'+')
    elif op == 'overwrite':                       # echo pwn > FILE
        with open(a[0], 'wb') as f:
            f.write(b'pwn')
    elif op == 'truncate':
        os.truncate(a[0], 0)
    elif op == 'create':
        os.close(os.open(a[0], os.O_CREAT | os.O_EXCL | os.O_WRONLY, a[1] if len(a) > 1 else 0o644))
    elif op == 'mkdir':
        os.mkdir(a[0], a[1] if len(a) > 1 else 0o755)
    elif op == 'symlink':
        os.symlink('target', a[0])
    elif op == 'unlink':
        os.unlink(a[0])
    elif op == 'rmdir':
        os.rmdir(a[0])
    elif op == 'rename':
        os.rename(a[0], a[1])
    elif op == 'listdir':
        return sorted(os.listdir(a[0]))
    elif op == 'chmod':
        os.chmod(a[0], a[1])
    elif op == 'chown':
        os.chown(a[0], a[1], a[2])
    elif op == 'utime':                           # explicit times: owner only
        os.utime(a[0], (1, 1))
    elif op == 'touch':                           # times = now: write permission is enough
        os.utime(a[0], None)
    elif op == 'setxattr':
        os.setxattr(a[0], a[1], b'v')
    elif op == 'getxattr':
        return os.getxattr(a[0], a[1]).decode()
    elif op == 'removexattr':
        os.removexattr(a[0], a[1])
    elif op in ('write_wo', 'write_rw', 'trunc_wo', 'trunc_rw'):
        fl = {'write_wo': os.O_WRONLY, 'write_rw': os.O_RDWR,
              'trunc_wo': os.O_WRONLY | os.O_TRUNC, 'trunc_rw': os.O_RDWR | os.O_TRUNC}[op]
        fd = os.open(a[0], fl)
        try:
            if not op.startswith('trunc'):
                os.pwrite(fd, b'x', 0)
        finally:
            os.close(fd)
    elif op == 'poke':                            # write-only, the byte already there
        fd = os.open(a[0], os.O_WRONLY)
        try:
            os.pwrite(fd, bytes([a[1]]), 0)
        finally:
            os.close(fd)
    elif op == 'late_write':                      # open write-only, wait for stdin, then write
        fd = os.open(a[0], os.O_WRONLY)
        print('opened', flush=True)
        sys.stdin.readline()
        os.pwrite(fd, b'late', 0)
        os.close(fd)
    elif op == 'connect':                         # talk to a unix socket, return the reply
        import socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(a[0])
        s.sendall(a[1].encode())
        out = b''
        while True:
            b = s.recv(4096)
            if not b:
                break
            out += b
        s.close()
        return 'reply:' + out.decode(errors='replace')
    else:
        raise SystemExit('unknown op ' + op)
    return 'ok'
for key, op, a in ops:
    try:
        res[key] = run(op, a)
    except OSError as e:
        res[key] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(res), flush=True)
'''


def setpriv(u, *cmd):
    """Run as user u with its real supplementary groups (--init-groups: /etc/group)."""
    return ['setpriv', f'--reuid={u.pw_uid}', f'--regid={u.pw_gid}', '--init-groups', *cmd]


def as_user(u, ops, timeout=60):
    r = subprocess.run(setpriv(u, sys.executable, '-c', PROBE, json.dumps(ops)),
                       capture_output=True, text=True, timeout=timeout, cwd='/',
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='module')
def users():
    """(a, b, gid): two unprivileged users, a in the group gid, b not."""
    need_root()
    if not os.path.exists('/usr/bin/setpriv'):
        pytest.skip('setpriv not installed')
    made_group, made_users = False, []
    try:
        try:
            grp.getgrnam(GROUP)
        except KeyError:
            r = subprocess.run(['groupadd', GROUP], capture_output=True, text=True)
            if r.returncode != 0:
                pytest.skip(f'cannot add a test group: {r.stderr.strip()}')
            made_group = True
        out = []
        for name, extra in ((USER_A, ['-G', GROUP]), (USER_B, [])):
            try:
                pwd.getpwnam(name)
            except KeyError:
                r = subprocess.run(['useradd', '--no-create-home', '--shell', '/usr/sbin/nologin',
                                    '--user-group', *extra, name], capture_output=True, text=True)
                if r.returncode != 0:
                    pytest.skip(f'cannot add a test user: {r.stderr.strip()}')
                made_users.append(name)
            out.append(pwd.getpwnam(name))
        g = grp.getgrnam(GROUP)
        assert USER_A in g.gr_mem and USER_B not in g.gr_mem, g
        yield out[0], out[1], g.gr_gid
    finally:
        for name in made_users:
            try:
                uid = pwd.getpwnam(name).pw_uid
                # no process of a test user may outlive the tests
                subprocess.run(['pkill', '-KILL', '-U', str(uid)], capture_output=True)
            except KeyError:
                pass
            subprocess.run(['userdel', name], capture_output=True)
        if made_group:
            subprocess.run(['groupdel', GROUP], capture_output=True)


# ---- mounts for each option combination ----------------------------------------------------------

class Target:
    """A mounted tree: p(), backing, ro; unmount() for the mount(8) kinds."""

    def __init__(self, mnt, backing, ro, unmount):
        self.mnt, self.backing, self.ro, self._unmount = mnt, backing, ro, unmount

    def p(self, *parts):
        return os.path.join(self.mnt, *parts)

    def unmount(self):
        self._unmount()


def umount_and_wait(mnt):
    pids = H.daemon_pids(mnt)
    if H.mounted_at(mnt):
        subprocess.run(['umount', mnt], capture_output=True, timeout=60)
    if H.mounted_at(mnt):
        subprocess.run(['fusermount3', '-u', '-z', mnt], capture_output=True, timeout=60)
    deadline = time.time() + H.EXIT_TIMEOUT
    while time.time() < deadline and any(H.pid_alive(p) for p in pids):
        time.sleep(0.05)


def mount_target(kind, mounts, populate, request):
    """Mount with option combination `kind`, populate(Target) it as root (read-write, then
    remounted for ro) and return the Target."""
    os.chmod(mounts.base, 0o711)      # the users must reach the mount points
    if kind in ('mount -t', 'fstab'):
        request.getfixturevalue('mount_helper')
        tag = 'mt' if kind == 'mount -t' else 'fstab'
        backing, mnt = mounts.localdir(tag + '-backing'), mounts.localdir(tag + '-mnt')
        os.rmdir(backing)             # initialised by the first mount (0700)
        request.addfinalizer(lambda: umount_and_wait(mnt))
        if kind == 'mount -t':
            r = subprocess.run(['mount', '-t', 'tpdefs', backing, mnt, '-o', 'allow_other'],
                               capture_output=True, text=True, timeout=60)
        else:
            with open('/etc/fstab', 'rb') as f:
                saved = f.read()
            try:
                with open('/etc/fstab', 'ab') as f:
                    if saved and not saved.endswith(b'\n'):
                        f.write(b'\n')
                    f.write(f'{backing} {mnt} tpdefs defaults,noauto,allow_other 0 0\n'.encode())
                r = subprocess.run(['mount', mnt], capture_output=True, text=True, timeout=60)
            finally:
                with open('/etc/fstab', 'wb') as f:
                    f.write(saved)
        assert r.returncode == 0, r.stdout + r.stderr
        t = Target(mnt, backing, False, lambda: umount_and_wait(mnt))
        populate(t)
        return t
    opts = kind.split(',')
    ro = 'ro' in opts
    m = mounts.new('m', opts=[o for o in opts if o != 'ro'])
    t = Target(m.mnt, m.backing, False, m.unmount)
    populate(t)
    if ro:
        m.unmount()
        m.opts = opts
        m.mount()
        t.ro = True
    return t


COMBOS = ['allow_other', 'allow_other,default_permissions', 'allow_other,ro', 'mount -t', 'fstab']


def build_tree(t, ua, ub, gid):
    p = t.p
    os.chmod(t.mnt, 0o755)
    assert os.stat(t.mnt).st_uid == 0
    with open(p('secret'), 'wb') as f:            # the private.txt
        f.write(b'secret')
    os.chmod(p('secret'), 0o600)
    os.setxattr(p('secret'), 'user.s', b'hidden')
    with open(p('a-private'), 'wb') as f:
        f.write(b'A')
    os.setxattr(p('a-private'), 'user.x', b'ax')
    os.chown(p('a-private'), ua.pw_uid, ua.pw_gid)
    os.chmod(p('a-private'), 0o600)
    os.mkdir(p('rootdir'))
    os.chmod(p('rootdir'), 0o755)
    with open(p('rootdir', 'rootfile'), 'wb') as f:
        f.write(b'r')
    os.chmod(p('rootdir', 'rootfile'), 0o666)     # writable, but the directory is not
    with open(p('grp'), 'wb') as f:
        f.write(b'group')
    os.chown(p('grp'), 0, gid)
    os.chmod(p('grp'), 0o640)
    os.mkdir(p('a-home'))
    os.chown(p('a-home'), ua.pw_uid, ua.pw_gid)
    os.chmod(p('a-home'), 0o700)
    with open(p('a-home', 'f'), 'wb') as f:
        f.write(b'f')
    os.chown(p('a-home', 'f'), ua.pw_uid, ua.pw_gid)


DENY_W = ('EACCES',)
DENY_P = ('EPERM',)


@pytest.mark.parametrize('kind', COMBOS)
def test_permissions_whatever_the_options(mounts, users, kind, request):
    ua, ub, gid = users
    t = mount_target(kind, mounts, lambda t: build_tree(t, ua, ub, gid), request)
    p = t.p
    # writes on a ro mount may be refused as EROFS before the permission check
    w = DENY_W + (('EROFS',) if t.ro else ())
    perm = DENY_P + (('EROFS',) if t.ro else ())
    okw = ('EROFS',) if t.ro else ('ok',)
    nsup = ('ENOTSUP',) + (('EROFS',) if t.ro else ())
    other = [  # user b: neither owner nor in the group
        ('read secret', 'read', [p('secret')], ('EACCES',)),
        ('append secret', 'append', [p('secret')], w),
        ('overwrite secret', 'overwrite', [p('secret')], w),
        ('truncate secret', 'truncate', [p('secret')], w),
        ('chmod secret', 'chmod', [p('secret'), 0o666], perm),
        ('chown secret', 'chown', [p('secret'), ub.pw_uid, -1], perm),
        ('chgrp secret', 'chown', [p('secret'), -1, ub.pw_gid], perm),
        ('utime secret', 'utime', [p('secret')], perm),
        ('touch secret', 'touch', [p('secret')], w),
        ('setxattr secret', 'setxattr', [p('secret'), 'user.s'], w),
        ('getxattr secret', 'getxattr', [p('secret'), 'user.s'], ('EACCES',)),
        ('removexattr secret', 'removexattr', [p('secret'), 'user.s'], w),
        # name spaces the kernel leaves to the filesystem: refused as on ext4
        ('setxattr system.* secret', 'setxattr', [p('secret'), 'system.x'], nsup),
        ('setxattr no prefix secret', 'setxattr', [p('secret'), 'x'], w + nsup),
        ('setxattr system.* rootfile', 'setxattr', [p('rootdir', 'rootfile'), 'system.x'], nsup),
        ('read a-private', 'read', [p('a-private')], ('EACCES',)),
        ('overwrite a-private', 'overwrite', [p('a-private')], w),
        ('getxattr a-private', 'getxattr', [p('a-private'), 'user.x'], ('EACCES',)),
        ('create in root', 'create', [p('newfile')], w),
        ('create in rootdir', 'create', [p('rootdir', 'new')], w),
        ('mkdir in rootdir', 'mkdir', [p('rootdir', 'd')], w),
        ('symlink in rootdir', 'symlink', [p('rootdir', 'l')], w),
        ('unlink in rootdir', 'unlink', [p('rootdir', 'rootfile')], w),
        ('rename in rootdir', 'rename', [p('rootdir', 'rootfile'), p('rootdir', 'x')], w),
        ('rename out of rootdir', 'rename', [p('rootdir', 'rootfile'), p('stolen')], w),
        ('rmdir rootdir', 'rmdir', [p('rootdir')], w),
        ('read grp', 'read', [p('grp')], ('EACCES',)),
        ('list a-home', 'listdir', [p('a-home')], ('EACCES',)),
        ('read in a-home', 'read', [p('a-home', 'f')], ('EACCES',)),
        # what b may do: the tree is world-readable where the modes say so
        ('list root', 'listdir', [p()], None),
        ('write rootfile', 'append', [p('rootdir', 'rootfile')], okw),
    ]
    member = [  # user a: owner of a-private and a-home, member of grp's group
        ('read a-private', 'read', [p('a-private')], ('A',)),
        ('read grp', 'read', [p('grp')], ('group',)),
        ('getxattr a-private', 'getxattr', [p('a-private'), 'user.x'], ('ax',)),
        ('list a-home', 'listdir', [p('a-home')], None),
        ('read secret', 'read', [p('secret')], ('EACCES',)),
        ('create in rootdir', 'create', [p('rootdir', 'new')], w),
        ('write grp', 'append', [p('grp')], w),             # 0640: the group may not write
        ('append a-private', 'append', [p('a-private')], okw),
        ('chmod a-private', 'chmod', [p('a-private'), 0o640], okw),
        ('utime a-private', 'utime', [p('a-private')], okw),
        ('setxattr a-private', 'setxattr', [p('a-private'), 'user.y'], okw),
        ('chgrp a-private', 'chown', [p('a-private'), -1, gid], okw),   # to a group it is in
        ('chown a-private', 'chown', [p('a-private'), ub.pw_uid, -1], perm),
        ('create in a-home', 'create', [p('a-home', 'new')], okw),
        ('rename in a-home', 'rename', [p('a-home', 'f'), p('a-home', 'g')], okw),
        ('mkdir in a-home', 'mkdir', [p('a-home', 'd')], okw),
    ]
    got_b = as_user(ub, [(k, op, a) for k, op, a, _ in other])
    got_a = as_user(ua, [(k, op, a) for k, op, a, _ in member])
    bad = {}
    for who, checks, got in (('b', other, got_b), ('a', member, got_a)):
        for k, _, _, want in checks:
            g = got.get(k)
            if want is None:
                if not isinstance(g, list):
                    bad[f'{who}: {k}'] = (g, 'a listing')
            elif g not in want:
                bad[f'{who}: {k}'] = (g, want)
    assert not bad, f'{kind}: (got, expected): {bad}'
    # nothing was changed by what was refused
    assert H.sha256_file(p('secret')) == H.sha256_bytes(b'secret')
    assert os.getxattr(p('secret'), 'user.s') == b'hidden'
    assert os.listxattr(p('secret')) == ['user.s']
    st = os.stat(p('secret'))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    assert sorted(os.listdir(p())) == ['a-home', 'a-private', 'grp', 'rootdir', 'secret']
    assert sorted(os.listdir(p('rootdir'))) == ['rootfile']
    with open(p('a-private'), 'rb') as f:
        assert f.read() == (b'A' if t.ro else b'A+')
    # root still reads everything
    with open(p('a-home', 'f' if t.ro else 'g'), 'rb') as f:
        assert f.read() == b'f'
    t.unmount()


def test_permission_checks_cannot_be_turned_off(mounts):
    m = mounts.new('off', opts=['allow_other', 'nodefault_permissions'], mount=False)
    rc, out = m.run_mount()
    assert rc != 0 and 'cannot be turned off' in out, (rc, out)
    assert not H.mounted_at(m.mnt)


# ---- S_ISUID / S_ISGID after writes and truncating opens -----------------------------------------

def test_writes_clear_suid_sgid_as_on_the_host_fs(mounts, users):
    """Every write path, by a non-root user (owner or not) and by root, compared with a
    directory of the host filesystem: write-only handles (which bypass the page cache), read-write
    handles, open(O_TRUNC), S_ISGID with and without group-exec, and a suid bit set after the
    writer opened the file."""
    ua, ub, gid = users
    os.chmod(mounts.base, 0o711)
    m = mounts.new('suid', opts=['allow_other'])
    os.chmod(m.mnt, 0o755)
    ref = mounts.localdir('suid-ref')
    os.chmod(ref, 0o755)
    # name: (owner uid, group, mode, who writes, op)
    cases = {
        'suid-wo': (0, 0, 0o6777, ua, 'write_wo'),
        'suid-rw': (0, 0, 0o6777, ua, 'write_rw'),
        'suid-trunc-wo': (0, 0, 0o6777, ua, 'trunc_wo'),
        'suid-trunc-rw': (0, 0, 0o6777, ua, 'trunc_rw'),
        'sgid-exec-wo': (0, 0, 0o2777, ua, 'write_wo'),
        'sgid-noexec-wo': (0, 0, 0o2666, ua, 'write_wo'),
        'sgid-noexec-rw': (0, 0, 0o2666, ua, 'write_rw'),
        'sgid-noexec-member-wo': (0, gid, 0o2666, ua, 'write_wo'),
        'suid-own-wo': (ua.pw_uid, ua.pw_gid, 0o6777, ua, 'write_wo'),
        'suid-own-trunc': (ua.pw_uid, ua.pw_gid, 0o6777, ua, 'trunc_wo'),
        'suid-root-wo': (0, 0, 0o6777, None, 'write_wo'),
        'suid-root-trunc': (0, 0, 0o6777, None, 'trunc_wo'),
    }
    results = {}
    for d in (m.mnt, ref):
        for name, (uid, g, mode, _, _) in cases.items():
            path = os.path.join(d, name)
            with open(path, 'wb') as f:
                f.write(b'data')
            os.chown(path, uid, g)
            os.chmod(path, mode)
            assert stat.S_IMODE(os.stat(path).st_mode) == mode, (path, oct(mode))
        for u in (ua, ub):
            mine = [(n, op, [os.path.join(d, n)]) for n, (_, _, _, who, op) in cases.items()
                    if who is u]
            if mine:
                got = as_user(u, mine)
                assert set(got.values()) == {'ok'}, (d, got)
        for n, (_, _, _, who, op) in cases.items():
            if who is None:   # root: CAP_FSETID keeps the bits
                fl = os.O_WRONLY | (os.O_TRUNC if op.startswith('trunc') else 0)
                fd = os.open(os.path.join(d, n), fl)
                if not op.startswith('trunc'):
                    os.pwrite(fd, b'x', 0)
                os.close(fd)
        # the mode must be right at once (no stale attribute cache: exec would trust it)
        results[d] = {n: stat.S_IMODE(os.stat(os.path.join(d, n)).st_mode) for n in cases}

    # a suid bit set while a write-only handle was already open: the next write clears it
    for d in (m.mnt, ref):
        path = os.path.join(d, 'late')
        with open(path, 'wb') as f:
            f.write(b'data')
        os.chmod(path, 0o666)
        proc = subprocess.Popen(setpriv(ua, sys.executable, '-c', PROBE,
                                        json.dumps([['late', 'late_write', [path]]])),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd='/')
        try:
            assert proc.stdout.readline().strip() == 'opened'
            os.chmod(path, 0o6777)
            proc.stdin.write('go\n')
            proc.stdin.flush()
            out = json.loads(proc.stdout.readline())
            assert out == {'late': 'ok'}, out
        finally:
            proc.stdin.close()
            proc.wait(timeout=60)
        results[d]['late'] = stat.S_IMODE(os.stat(path).st_mode)

    got, want = results[m.mnt], results[ref]
    diff = {n: (oct(got[n]), oct(want[n])) for n in want if got[n] != want[n]}
    assert not diff, f'(tpdefs, host fs): {diff}'
    # and what the host filesystem did is the rule we mean (guards against an odd host fs)
    for n in ('suid-wo', 'suid-rw', 'suid-trunc-wo', 'suid-trunc-rw', 'suid-own-wo',
              'suid-own-trunc', 'late'):
        assert got[n] == 0o777, (n, oct(got[n]))
    assert got['sgid-exec-wo'] == 0o777
    assert got['suid-root-wo'] == got['suid-root-trunc'] == 0o6777
    assert got['sgid-noexec-member-wo'] == 0o2666
    # the writes themselves went through
    with open(m.p('suid-wo'), 'rb') as f:
        assert f.read() == b'xata'
    with open(m.p('late'), 'rb') as f:
        assert f.read() == b'late'
    assert os.stat(m.p('suid-trunc-wo')).st_size == 0
    m.remount()   # what the daemon stored, not only what the kernel cached
    again = {n: stat.S_IMODE(os.stat(m.p(n)).st_mode) for n in got}
    assert again == got


def file_caps():
    """security.capability value (VFS_CAP_REVISION_2, effective): cap_net_raw permitted."""
    import struct
    return struct.pack('<5I', 0x02000000 | 1, 1 << 13, 0, 0, 0)


def test_writes_remove_file_capabilities_as_on_the_host_fs(mounts, users):
    """Any write or truncation removes security.capability (cap_inode_killpriv), also through a
    write-only handle, also by root, also when set while a writer had the file open."""
    ua, ub, gid = users
    os.chmod(mounts.base, 0o711)
    m = mounts.new('caps', opts=['allow_other'])
    os.chmod(m.mnt, 0o755)
    ref = mounts.localdir('caps-ref')
    os.chmod(ref, 0o755)
    cases = {'wo': (ua, 'write_wo'), 'rw': (ua, 'write_rw'), 'trunc': (ua, 'trunc_wo'),
             'root-wo': (None, 'write_wo'), 'late': (ua, 'late_write')}
    results = {}
    for d in (m.mnt, ref):
        for name in cases:
            path = os.path.join(d, name)
            with open(path, 'wb') as f:
                f.write(b'data')
            os.chmod(path, 0o666)
            if name != 'late':
                os.setxattr(path, 'security.capability', file_caps())
        got = as_user(ua, [(n, op, [os.path.join(d, n)]) for n, (who, op) in cases.items()
                           if who is ua and op != 'late_write'])
        assert set(got.values()) == {'ok'}, (d, got)
        fd = os.open(os.path.join(d, 'root-wo'), os.O_WRONLY)
        os.pwrite(fd, b'x', 0)
        os.close(fd)
        path = os.path.join(d, 'late')
        proc = subprocess.Popen(setpriv(ua, sys.executable, '-c', PROBE,
                                        json.dumps([['late', 'late_write', [path]]])),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd='/')
        try:
            assert proc.stdout.readline().strip() == 'opened'
            os.setxattr(path, 'security.capability', file_caps())
            proc.stdin.write('go\n')
            proc.stdin.flush()
            assert json.loads(proc.stdout.readline()) == {'late': 'ok'}
        finally:
            proc.stdin.close()
            proc.wait(timeout=60)
        results[d] = {n: 'security.capability' in os.listxattr(os.path.join(d, n)) for n in cases}
    assert results[m.mnt] == results[ref], f'tpdefs {results[m.mnt]}, host fs {results[ref]}'
    assert not any(results[m.mnt].values()), results[m.mnt]


def test_exec_right_after_a_clearing_write_is_not_suid(mounts, users):
    """The kernel caches attributes (10 s) and exec trusts the cached S_ISUID: after a write
    through a write-only handle cleared it, running the file must not give root's uid."""
    ua, ub, gid = users
    os.chmod(mounts.base, 0o711)
    m = mounts.new('exec', opts=['allow_other', 'suid'])
    os.chmod(m.mnt, 0o755)
    idbin = '/usr/bin/id'
    with open(idbin, 'rb') as f, open(m.p('id'), 'wb') as g:
        data = f.read()
        g.write(data)
    os.chmod(m.p('id'), 0o4777)
    run = lambda: subprocess.run(setpriv(ua, m.p('id'), '-u'), capture_output=True,  # noqa: E731
                                 text=True, timeout=60, cwd='/').stdout.strip()
    assert run() == '0'               # suid root works on this mount
    got = as_user(ua, [('poke', 'poke', [m.p('id'), data[0]])])
    assert got == {'poke': 'ok'}, got
    assert run() == str(ua.pw_uid)    # no stat in between: the kernel's cache was dropped
    assert stat.S_IMODE(os.stat(m.p('id')).st_mode) == 0o777
    assert H.sha256_file(m.p('id')) == H.sha256_bytes(data)


def test_setgid_directory_as_on_the_host_fs(mounts, users):
    """New entries in a setgid directory take its group, new subdirectories inherit S_ISGID, and a
    creator outside the group cannot make a setgid-executable file there."""
    ua, ub, gid = users
    os.chmod(mounts.base, 0o711)
    m = mounts.new('sgid', opts=['allow_other'])
    os.chmod(m.mnt, 0o755)
    ref = mounts.localdir('sgid-ref')
    os.chmod(ref, 0o755)
    results = {}
    for d in (m.mnt, ref):
        sg = os.path.join(d, 'sg')
        os.mkdir(sg)
        os.chown(sg, 0, gid)
        os.chmod(sg, 0o2777)
        q = lambda *n: os.path.join(sg, *n)  # noqa: E731
        got = as_user(ub, [('f', 'create', [q('b-file'), 0o644]),
                           ('x', 'create', [q('b-sgid-exec'), 0o2755]),
                           ('d', 'mkdir', [q('b-dir'), 0o755]),
                           ('f2', 'create', [q('b-dir', 'nested'), 0o644]),
                           ('l', 'symlink', [q('b-link')])])
        got.update(as_user(ua, [('x2', 'create', [q('a-sgid-exec'), 0o2755])]))
        assert set(got.values()) == {'ok'}, (d, got)
        results[d] = {}
        for n in ('b-file', 'b-sgid-exec', 'b-dir', os.path.join('b-dir', 'nested'), 'b-link',
                  'a-sgid-exec'):
            st = os.lstat(q(n))
            results[d][n] = (st.st_uid, st.st_gid, oct(st.st_mode))
    got, want = results[m.mnt], results[ref]
    assert got == want, f'tpdefs {got}\nhost fs {want}'
    assert got['b-file'][:2] == (ub.pw_uid, gid)
    assert int(got['b-dir'][2], 8) & stat.S_ISGID
    m.remount()
    assert os.stat(m.p('sg', 'b-dir', 'nested')).st_gid == gid


# ---- the control socket and tpdefs-admin ---------------------------------------------------------

def root_status(backing):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(os.path.join(backing, 'control.sock'))
    s.sendall(b'STATUS\n')
    out = b''
    while not out.endswith(b'\n'):
        b = s.recv(4096)
        if not b:
            break
        out += b
    s.close()
    text = out.decode()
    assert text.startswith('OK '), text
    return dict(kv.split('=') for kv in text.split()[1:])


def test_control_socket_and_admin_refuse_other_users(mounts, users):
    ua, ub, gid = users
    os.chmod(mounts.base, 0o711)
    # no debounce encode: only a flush could encode the file
    m = mounts.new('ctl', opts=['allow_other', 'debounce_ms=600000'])
    with open(m.p('secret-name.bin'), 'wb') as f:
        f.write(os.urandom(1 << 16))
    sock = os.path.join(m.backing, 'control.sock')
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert root_status(m.backing)['staged_files'] == '1'
    # tpdefs-admin as a user who cannot read BACKING: a clear error, no information
    for cmd in (['flush'], ['gc'], ['stats'], ['stats', '--json'], ['verify']):
        r = subprocess.run(setpriv(ub, H.ADMIN_BIN, cmd[0], m.backing, *cmd[1:]),
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert r.returncode != 0, (cmd, r.stdout, r.stderr)
        assert 'Permission denied' in r.stderr, (cmd, r.stderr)
        assert 'secret-name' not in r.stdout + r.stderr, (cmd, r.stdout, r.stderr)
        assert 'Traceback' not in r.stderr and 'Segmentation' not in r.stderr
    # the socket directly, as another user: unreachable inside the 0700 BACKING ...
    got = as_user(ub, [('status', 'connect', [sock, 'STATUS\n'])])
    assert got == {'status': 'EACCES'}, got
    # ... and refused by the daemon itself when an administrator opened the modes up
    os.chmod(m.backing, 0o711)
    os.chmod(sock, 0o666)
    try:
        cmds = [('ping', 'PING\n'), ('status', 'STATUS\n'), ('flush', 'FLUSH\n'),
                ('gc', 'GC\n'), ('gc dry', 'GC dry_run=1\n')]
        for u in (ua, ub):
            got = as_user(u, [(k, 'connect', [sock, c]) for k, c in cmds])
            for k, _ in cmds:
                assert got[k].startswith('reply:ERR') and 'permission denied' in got[k], (u, k, got)
                assert 'files=' not in got[k] and 'secret-name' not in got[k], (u, k, got)
    finally:
        os.chmod(m.backing, 0o700)
        os.chmod(sock, 0o600)
    # nothing happened: the file is still staged, no object was written
    stat_after = root_status(m.backing)
    assert stat_after['staged_files'] == '1' and stat_after['objects'] == '0', stat_after
    assert os.listdir(os.path.join(m.backing, 'objects')) == []
    # root still may
    m.flush()
    assert root_status(m.backing)['staged_files'] == '0'
