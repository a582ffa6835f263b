"""A shared store: metadata in a real PostgreSQL server (started by the test, Unix socket only),
blobs in a directory. Format, mount, write, read back bit-exact after a remount, admin commands by
URI, and every refusal with a clear one-line message; passwords never shown."""
import os
import signal
import subprocess
import time

import pytest

import pgserver
import tpdefs_harness as H

pytestmark = [pytest.mark.skipif(not H.fuse_available(), reason='needs /dev/fuse and root'),
              pytest.mark.skipif(not pgserver.available(), reason='needs PostgreSQL (deps.sh)')]

SAMPLE = os.path.join(H.CORPUS, 'gpt_full_state')


@pytest.fixture(scope='module')
def pg():
    s = pgserver.Server()
    yield s
    s.close()


_n = [0]


@pytest.fixture
def store(pg, mounts):
    """A freshly formatted shared store: (uri, blobs dir)."""
    _n[0] += 1
    db = f'ckpt{_n[0]}'
    pg.createdb(db)
    uri = pg.uri(db)
    blobs = os.path.join(mounts.base, f'blobs{_n[0]}')
    r = admin('format', uri, '--blobs', blobs)
    assert r.returncode == 0, r.stdout + r.stderr
    return uri, blobs


def admin(*args, timeout=120, env=None):
    return subprocess.run([H.ADMIN_BIN, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


def daemon(*args, timeout=60, env=None):
    return subprocess.run([H.MOUNT_BIN, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


def shared_mount(mounts, uri, name, opts=()):
    return mounts.new(name, backing=uri,
                      opts=[f'local_dir={mounts.localdir(name + "-local")}', *opts])


def sources(n=4):
    return [os.path.join(SAMPLE, f) for f in sorted(os.listdir(SAMPLE))[:n]]


def copy_in(m, srcs):
    for s in srcs:
        with open(s, 'rb') as f, open(m.p(os.path.basename(s)), 'wb') as g:
            g.write(f.read())


def check(m, srcs):
    for s in srcs:
        assert H.sha256_file(m.p(os.path.basename(s))) == H.sha256_file(s), s


def test_write_read_remount_admin(store, mounts):
    uri, blobs = store
    m = shared_mount(mounts, uri, 'a')
    srcs = sources()
    copy_in(m, srcs)
    os.makedirs(m.p('run/sub'))
    with open(m.p('run/sub/notes.txt'), 'w') as f:
        f.write('hello')
    check(m, srcs)                       # staged, before any encode
    r = admin('flush', uri)              # by URI, through the daemon on this host
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count('encoded ') == len(srcs) + 1, r.stdout
    check(m, srcs)
    m.remount()
    check(m, srcs)
    assert open(m.p('run/sub/notes.txt')).read() == 'hello'
    st = m.stats()
    assert st['objects'] == len(srcs) + 1 and st['staged_files'] == 0, st
    # the checkpoints are delta-coded against each other, as in a directory store
    assert sum(1 for e in st['files'] if e.get('base_object')) >= len(srcs) - 1, st['files']
    objs = os.listdir(os.path.join(blobs, 'objects'))
    assert len(objs) == len(srcs) + 1, objs
    r = admin('verify', uri)
    assert r.returncode == 0, r.stdout + r.stderr
    os.unlink(m.p(os.path.basename(srcs[0])))
    r = admin('gc', uri)
    assert r.returncode == 0, r.stdout + r.stderr
    m.unmount()
    # offline: the admin commands take the store's lock themselves
    for cmd in (['verify', uri], ['gc', uri], ['stats', uri], ['flush', uri]):
        r = admin(*cmd)
        assert r.returncode == 0, (cmd, r.stdout + r.stderr)
    m.mount()
    check(m, srcs[1:])


def test_closed_files_survive_a_killed_daemon(store, mounts):
    uri, _ = store
    m = shared_mount(mounts, uri, 'k', opts=['debounce_ms=60000'])
    srcs = sources(3)
    copy_in(m, srcs)                     # closed, staged, not encoded
    pids = H.daemon_pids(m.mnt)
    for p in pids:
        os.kill(p, signal.SIGKILL)
    deadline = time.time() + 30
    while any(H.pid_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    subprocess.run(['fusermount3', '-u', '-z', m.mnt], capture_output=True)
    m.pids = []
    m.mount()                            # the server dropped the dead daemon's mount lock
    check(m, srcs)
    m.flush()
    check(m, srcs)
    assert m.stats()['staged_files'] == 0


def test_second_mount_is_refused_with_where(store, mounts):
    uri, _ = store
    shared_mount(mounts, uri, 'one')
    other = mounts.localdir('two-mnt')
    r = daemon(uri, other, '-o', f'local_dir={mounts.localdir("two-local")}')
    assert r.returncode != 0
    msg = r.stderr.strip()
    assert 'already served' in msg and 'local_dir' in msg, msg
    assert len(msg.splitlines()) == 1, msg
    assert not H.mounted_at(other)


def test_server_restart_and_outage(pg, store, mounts):
    uri, _ = store
    # a short bound on how long a lost server is waited for (the default is 30 s)
    os.environ['TPDEFS_PG_RETRY_S'] = '3'
    try:
        m = shared_mount(mounts, uri, 'out')
    finally:
        del os.environ['TPDEFS_PG_RETRY_S']
    srcs = sources(2)
    copy_in(m, srcs)
    pg.restart()                         # a restart: the next calls reconnect and go on
    check(m, srcs)
    with open(m.p('after-restart'), 'w') as f:
        f.write('x')
    pg.stop()                            # an outage: bounded waits, then EIO, never wrong bytes
    t = time.time()
    with pytest.raises(OSError):
        with open(m.p('during-outage'), 'w') as f:
            f.write('y')
    assert time.time() - t < 30, 'no bounded wait'
    pg.start()                           # back: the same daemon recovers by itself
    deadline = time.time() + 30
    while True:
        try:
            with open(m.p('after-outage'), 'w') as f:
                f.write('z')
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    check(m, srcs)
    assert open(m.p('after-restart')).read() == 'x'
    assert open(m.p('after-outage')).read() == 'z'


def test_refusals_are_one_clear_line(pg, store, mounts):
    uri, blobs = store
    mnt = mounts.localdir('ref-mnt')
    local = mounts.localdir('ref-local')

    def refused(r, *words):
        msg = (r.stderr or r.stdout).strip()
        assert r.returncode != 0, msg
        assert len(msg.splitlines()) == 1, msg
        for w in words:
            assert w in msg, (w, msg)

    # format: a database that holds a store, a non-empty blobs directory, a relative path
    refused(admin('format', uri, '--blobs', blobs + '-x'), 'already holds a tpdefs store')
    pg.createdb('fresh')
    os.makedirs(blobs + '-full')
    open(os.path.join(blobs + '-full', 'junk'), 'w').close()
    refused(admin('format', pg.uri('fresh'), '--blobs', blobs + '-full'), 'not empty')
    refused(admin('format', pg.uri('fresh'), '--blobs', blobs), 'already the blobs directory')
    refused(admin('format', pg.uri('fresh'), '--blobs', 'rel/dir'), 'absolute')
    # a foreign schema
    pg.createdb('foreign')
    pg.psql('CREATE TABLE accounts(id int)', 'foreign')
    refused(admin('format', pg.uri('foreign'), '--blobs', blobs + '-f'), 'something else')
    refused(daemon(pg.uri('foreign'), mnt, '-o', f'local_dir={local}'), 'no tpdefs store')
    # an unformatted database, a database that does not exist, a server that is not there
    refused(daemon(pg.uri('fresh'), mnt, '-o', f'local_dir={local}'), 'no tpdefs store')
    refused(daemon(pg.uri('nosuchdb'), mnt, '-o', f'local_dir={local}'), 'cannot connect')
    refused(admin('stats', 'postgresql://nobody@%2Fnonexistent/db'), 'cannot connect')
    refused(daemon('postgresql://h/d%zz', mnt), 'PostgreSQL URI')
    # the blobs directory: missing (not mounted on this node), or another store's
    os.rename(blobs, blobs + '-moved')
    try:
        refused(daemon(uri, mnt, '-o', f'local_dir={local}'), 'blobs directory')
    finally:
        os.rename(blobs + '-moved', blobs)
    marker = os.path.join(blobs, '.tpdefs-blobs')
    good = open(marker).read()
    with open(marker, 'w') as f:
        f.write('0123456789abcdef0123456789abcdef\n')
    try:
        refused(daemon(uri, mnt, '-o', f'local_dir={local}'), 'not this store')
    finally:
        with open(marker, 'w') as f:
            f.write(good)
    refused(daemon(mounts.localdir('plain'), mnt, '-o', f'local_dir={local}'), 'local_dir')
    assert not H.mounted_at(mnt)


def test_password_never_shown(pg, store, mounts):
    uri, _ = store
    secret = 'Hunter2secret'
    # trust authentication ignores the password: it only has to travel and never be printed
    with_pw = uri.replace('postgres@', f'postgres:{secret}@') + f'?password={secret}x'
    local = mounts.localdir('pw-local')
    m = mounts.new('pw', backing=with_pw, opts=[f'local_dir={local}'], mount=False)
    m.mount()
    for pid in H.daemon_pids(m.mnt):
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            assert secret.encode() not in f.read()
    with open('/proc/self/mounts') as f:
        assert secret not in f.read()
    with open(m.p('f'), 'w') as f:
        f.write('data')
    r = admin('flush', with_pw)
    assert r.returncode == 0 and secret not in r.stdout + r.stderr
    r = admin('stats', with_pw.replace('/ckpt', '/nosuchdb'))
    assert r.returncode != 0 and secret not in r.stdout + r.stderr, r.stderr
    m.unmount()
    # what the daemon printed (the harness's own "$ command" lines aside)
    out = '\n'.join(l for l in m.read_log().splitlines() if not l.startswith('$ '))
    assert secret not in out
