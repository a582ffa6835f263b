"""Permissions with -o default_permissions,allow_other: a non-root user cannot read or change what
the mode bits deny (EACCES/EPERM), can work in their own 0700 directory, and the backing
directory is created 0700."""
import json
import os
import pwd
import stat
import subprocess
import sys

import pytest

import tpdefs_harness as H
from test_rel_00_util import need_root

PROBE = r'''
import errno, json, os, sys
ops = json.loads(sys.argv[1])
res = {}
def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))
for key, op, args in ops:
    try:
        if op == 'read':
            with open(args[0], 'rb') as f:
                f.read()
        elif op == 'write':
            with open(args[0], 'ab') as f:
                f.write(b'user')
        elif op == 'create':
            with open(args[0], 'xb') as f:
                f.write(b'mine')
        elif op == 'listdir':
            os.listdir(args[0])
        elif op == 'chmod':
            os.chmod(args[0], 0o777)
        elif op == 'chown':
            os.chown(args[0], os.getuid(), -1)
        elif op == 'unlink':
            os.unlink(args[0])
        elif op == 'rename':
            os.rename(args[0], args[1])
        elif op == 'mkdir':
            os.mkdir(args[0], 0o700)
        elif op == 'truncate':
            os.truncate(args[0], 0)
        elif op == 'setxattr':
            os.setxattr(args[0], 'user.x', b'1')
        elif op == 'utime':
            os.utime(args[0], (1, 1))
        res[key] = 'ok'
    except OSError as e:
        res[key] = name(e)
print(json.dumps(res))
'''


def ensure_user(name):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        r = subprocess.run(['useradd', '--no-create-home', '--shell', '/usr/sbin/nologin',
                            '--user-group', name], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f'cannot add a test user: {r.stderr.strip()}')
        return pwd.getpwnam(name)


def as_user(u, ops, timeout=60):
    r = subprocess.run(['setpriv', f'--reuid={u.pw_uid}', f'--regid={u.pw_gid}',
                        '--clear-groups', sys.executable, '-c', PROBE, json.dumps(ops)],
                       capture_output=True, text=True, timeout=timeout, cwd='/',
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


@pytest.fixture
def users():
    need_root()
    if not os.path.exists('/usr/bin/setpriv'):
        pytest.skip('setpriv not installed')
    made = []
    names = ['tpdrel-a', 'tpdrel-b']
    existed = set()
    for n in names:
        try:
            pwd.getpwnam(n)
            existed.add(n)
        except KeyError:
            pass
        made.append(ensure_user(n))
    try:
        yield made
    finally:
        for u in made:
            # no processes of the test users may outlive the test
            subprocess.run(['pkill', '-KILL', '-U', str(u.pw_uid)], capture_output=True)
            if u.pw_name not in existed:
                subprocess.run(['userdel', u.pw_name], capture_output=True)


def test_mode_bits_enforced(mounts, users):
    ua, ub = users
    m = mounts.new('perm', opts=['default_permissions', 'allow_other'])
    os.chmod(mounts.base, 0o711)      # let the users reach the mount point
    os.chmod(m.mnt, 0o755)
    st = os.stat(m.backing)
    assert stat.S_IMODE(st.st_mode) == 0o700, f'backing dir mode {oct(st.st_mode)}'
    p = m.p
    os.mkdir(p('rootonly'), 0o700)
    with open(p('rootonly', 'secret'), 'wb') as f:
        f.write(b'secret')
    with open(p('public'), 'wb') as f:
        f.write(b'public')
    os.chmod(p('public'), 0o644)
    with open(p('private'), 'wb') as f:
        f.write(b'private')
    os.chmod(p('private'), 0o600)
    os.mkdir(p('shared'), 0o755)
    os.mkdir(p('home'), 0o700)
    os.chown(p('home'), ua.pw_uid, ua.pw_gid)
    os.mkdir(p('sticky'))
    os.chmod(p('sticky'), 0o1777)          # mkdir's mode is subject to the umask
    with open(p('group_rw'), 'wb') as f:
        f.write(b'g')
    os.chown(p('group_rw'), 0, ua.pw_gid)
    os.chmod(p('group_rw'), 0o660)

    deny = as_user(ua, [
        ('read secret', 'read', [p('rootonly', 'secret')]),
        ('list rootonly', 'listdir', [p('rootonly')]),
        ('read private', 'read', [p('private')]),
        ('write public', 'write', [p('public')]),
        ('truncate public', 'truncate', [p('public')]),
        ('chmod public', 'chmod', [p('public')]),
        ('chown public', 'chown', [p('public')]),
        ('utime public', 'utime', [p('public')]),
        ('xattr public', 'setxattr', [p('public')]),
        ('create in shared', 'create', [p('shared', 'x')]),
        ('mkdir in root', 'mkdir', [p('mine')]),
        ('unlink public', 'unlink', [p('public')]),
        ('rename public', 'rename', [p('public'), p('shared', 'stolen')]),
        ('read backing', 'listdir', [m.backing]),
        # allowed
        ('read public', 'read', [p('public')]),
        ('list shared', 'listdir', [p('shared')]),
        ('create in home', 'create', [p('home', 'mine')]),
        ('write in home', 'write', [p('home', 'mine')]),
        ('read in home', 'read', [p('home', 'mine')]),
        ('chmod in home', 'chmod', [p('home', 'mine')]),
        ('mkdir in home', 'mkdir', [p('home', 'sub')]),
        ('rename in home', 'rename', [p('home', 'mine'), p('home', 'sub', 'moved')]),
        ('create sticky', 'create', [p('sticky', 'a-file')]),
        ('group write', 'write', [p('group_rw')]),
    ])
    expect = {
        'read secret': 'EACCES', 'list rootonly': 'EACCES', 'read private': 'EACCES',
        'write public': 'EACCES', 'truncate public': 'EACCES', 'chmod public': 'EPERM',
        'chown public': 'EPERM', 'utime public': 'EPERM', 'xattr public': 'EACCES',  # user.* needs write permission
       
        'create in shared': 'EACCES', 'mkdir in root': 'EACCES', 'unlink public': 'EACCES',
        'rename public': 'EACCES', 'read backing': 'EACCES',
        'read public': 'ok', 'list shared': 'ok', 'create in home': 'ok', 'write in home': 'ok',
        'read in home': 'ok', 'chmod in home': 'ok', 'mkdir in home': 'ok',
        'rename in home': 'ok', 'create sticky': 'ok',
        # --clear-groups drops supplementary groups only; the primary gid is the file's group
        'group write': 'ok',
    }
    bad = {k: (deny.get(k), v) for k, v in expect.items() if deny.get(k) != v}
    assert not bad, f'user {ua.pw_name}: (got, expected): {bad}'
    # the files the user made are theirs
    st = os.stat(p('home', 'sub', 'moved'))
    assert (st.st_uid, st.st_gid) == (ua.pw_uid, ua.pw_gid)
    assert read_bytes(p('home', 'sub', 'moved')) == b'mineuser'
    # another user cannot enter the first user's 0700 home nor touch their sticky-dir file
    other = as_user(ub, [
        ('list home', 'listdir', [p('home')]),
        ('read in home', 'read', [p('home', 'sub', 'moved')]),
        ('unlink sticky', 'unlink', [p('sticky', 'a-file')]),
        ('group write', 'write', [p('group_rw')]),
    ])
    want_other = {'list home': 'EACCES', 'read in home': 'EACCES', 'unlink sticky': 'EPERM',
                  'group write': 'EACCES'}
    bad = {k: (other.get(k), v) for k, v in want_other.items() if other.get(k) != v}
    assert not bad, f'user {ub.pw_name}: (got, expected): {bad}'
    # the same after a remount (modes and owners are persistent)
    m.remount()
    again = as_user(ua, [('read secret', 'read', [p('rootonly', 'secret')]),
                         ('read in home', 'read', [p('home', 'sub', 'moved')])])
    assert again == {'read secret': 'EACCES', 'read in home': 'ok'}, again
    os.chmod(mounts.base, 0o700)


def read_bytes(path):
    with open(path, 'rb') as f:
        return f.read()
