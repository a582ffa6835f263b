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


def flush_node(m):
    """FLUSH through one daemon's own control socket (its local_dir)."""
    import socket
    local = [o.split('=', 1)[1] for o in m.opts if o.startswith('local_dir=')][0]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(120)
        c.connect(os.path.join(local, 'control.sock'))
        c.sendall(b'FLUSH\n')
        out = b''
        while not (out.startswith(b'OK') or b'\nOK' in out or b'ERR' in out):
            b = c.recv(65536)
            if not b:
                break
            out += b
    assert b'ERR' not in out, out
    return out.decode(errors='replace')


def wait_for(cond, what, limit=5.0):
    deadline = time.time() + limit
    while not cond():
        assert time.time() < deadline, what
        time.sleep(0.05)
    return time.time()


def test_two_nodes_close_to_open(store, mounts):
    """What one node closed, the other opens and reads bit-exact: staged or stored."""
    uri, _ = store
    a = shared_mount(mounts, uri, 'na', opts=['debounce_ms=60000'])
    b = shared_mount(mounts, uri, 'nb', opts=['debounce_ms=60000'])
    srcs = sources(3)
    copy_in(a, srcs[:1])
    # a closed file of node a, still staged there, read on node b
    t0 = time.time()
    wait_for(lambda: os.path.exists(b.p(os.path.basename(srcs[0]))), 'name not seen', 3)
    check(b, srcs[:1])
    flush_node(a)                        # stored by node a
    check(b, srcs[:1])
    # a new version written on node b is coded against node a's (delta across nodes)
    copy_in(b, srcs[1:2])
    check(a, srcs[1:2])
    out = flush_node(b)
    assert 'encoded' in out and '(sibling)' in out, out
    st = b.stats()
    es = {e['path'].lstrip('/'): e for e in st['files']}
    n0, n1 = (os.path.basename(s) for s in srcs[:2])
    assert es[n0].get('base_object') or es[n1].get('base_object'), es
    check(a, srcs[:2])
    check(b, srcs[:2])
    # namespace changes of one node are seen by the other within a second or so
    os.mkdir(a.p('dir'))
    os.rename(a.p(n0), a.p('dir/' + n0))
    seen = wait_for(lambda: os.path.exists(b.p('dir', n0)) and not os.path.exists(b.p(n0)),
                    'rename on a not seen on b', 3)
    H.report(f'shared store: rename on node a seen on node b after {seen - t0:.2f}s (from start)')
    os.unlink(b.p('dir', n0))
    wait_for(lambda: not os.path.exists(a.p('dir', n0)), 'unlink on b not seen on a', 3)
    # what one node rewrote, the other reads anew after the close (no stale page cache)
    with open(a.p('notes'), 'w') as f:
        f.write('first')
    assert open(b.p('notes')).read() == 'first'
    flush_node(a)
    with open(a.p('notes'), 'w') as f:
        f.write('second, longer')
    wait_for(lambda: open(b.p('notes')).read() == 'second, longer', 'stale read on b', 3)
    for m in (a, b):
        m.unmount()
    r = admin('verify', uri)
    assert r.returncode == 0, r.stdout + r.stderr


def test_writer_of_another_node_waits_its_turn(store, mounts):
    """Concurrent writers of one file on two nodes: the second gets EBUSY until the first
    node has stored the file; nothing is ever mixed."""
    uri, _ = store
    a = shared_mount(mounts, uri, 'wa', opts=['debounce_ms=60000'])
    b = shared_mount(mounts, uri, 'wb', opts=['debounce_ms=60000'])
    with open(a.p('f'), 'wb') as f:
        f.write(b'A' * 100000)
    import errno
    with pytest.raises(OSError) as e:
        open(b.p('f'), 'r+b')
    assert e.value.errno == errno.EBUSY
    flush_node(a)
    with open(b.p('f'), 'r+b') as f:
        f.write(b'B' * 10)
    flush_node(b)
    want = b'B' * 10 + b'A' * (100000 - 10)
    assert open(a.p('f'), 'rb').read() == want
    assert open(b.p('f'), 'rb').read() == want


def test_dead_node_files_taken_over(store, mounts):
    """kill -9 of one node with closed, unencoded files: another node encodes them."""
    uri, _ = store
    a = shared_mount(mounts, uri, 'da', opts=['debounce_ms=60000'])
    b = shared_mount(mounts, uri, 'db', opts=['debounce_ms=60000'])
    srcs = sources(3)
    copy_in(a, srcs)
    for p in H.daemon_pids(a.mnt):
        os.kill(p, signal.SIGKILL)
    wait_for(lambda: not any(H.pid_alive(p) for p in a.pids), 'daemon survived', 30)
    subprocess.run(['fusermount3', '-u', '-z', a.mnt], capture_output=True)
    a.pids = []
    check(b, srcs)                       # staged files of the dead node, read on b
    out = flush_node(b)
    assert out.count('encoded ') == len(srcs), out
    assert b.stats()['staged_files'] == 0
    check(b, srcs)
    r = admin('verify', uri)
    assert r.returncode == 0, r.stdout + r.stderr


def test_gc_on_one_node_while_the_other_reads(store, mounts):
    uri, _ = store
    a = shared_mount(mounts, uri, 'ga')
    b = shared_mount(mounts, uri, 'gb')
    srcs = sources(6)
    copy_in(a, srcs)
    flush_node(a)
    # the newest versions go: the older ones are deltas against them and get re-encoded
    for s in srcs[2:]:
        os.unlink(a.p(os.path.basename(s)))
    survivors = srcs[:2]
    want = {s: H.sha256_file(s) for s in survivors}
    import threading
    stop, bad, reads = threading.Event(), [], [0]

    def reader():
        while not stop.is_set():
            for s in survivors:
                try:
                    fd = os.open(b.p(os.path.basename(s)), os.O_RDONLY)
                    try:
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                        data = b''.join(iter(lambda: os.read(fd, 1 << 20), b''))
                    finally:
                        os.close(fd)
                except OSError as e:
                    bad.append(f'{s}: {e}')
                    continue
                if H.sha256_bytes(data) != want[s]:
                    bad.append(f'{s}: wrong bytes')
                reads[0] += 1

    th = threading.Thread(target=reader)
    th.start()
    try:
        time.sleep(0.2)
        gdir = [o.split('=', 1)[1] for o in a.opts if o.startswith('local_dir=')][0]
        r = admin('gc', uri)
        time.sleep(0.2)
    finally:
        stop.set()
        th.join()
    assert r.returncode == 0, r.stdout + r.stderr
    assert 're-encoded' in r.stdout, r.stdout
    assert not bad, bad[:5]
    assert reads[0] > 0
    check(a, survivors)
    check(b, survivors)
    assert gdir


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


def with_host(name, fn, *args, **kw):
    """Run fn as node `name` (TPDEFS_HOST: how the tests stand in for other machines)."""
    old = os.environ.get('TPDEFS_HOST')
    os.environ['TPDEFS_HOST'] = name
    try:
        return fn(*args, **kw)
    finally:
        if old is None:
            del os.environ['TPDEFS_HOST']
        else:
            os.environ['TPDEFS_HOST'] = old


def test_admin_from_a_node_without_a_daemon(store, mounts):
    """flush and gc by URI from a node that serves nothing, while another node serves."""
    uri, _ = store
    a = with_host('node-a', shared_mount, mounts, uri, 'ra')
    srcs = sources(6)
    copy_in(a, srcs)
    r = with_host('node-c', admin, 'flush', uri)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'staged_files=0' in r.stdout, r.stdout
    for s in srcs[2:]:
        os.unlink(a.p(os.path.basename(s)))
    r = with_host('node-c', admin, 'gc', uri)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 're-encoded' in r.stdout, r.stdout
    check(a, srcs[:2])
    r = with_host('node-c', admin, 'verify', uri)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dead_node_files_taken_over_without_a_flush(store, mounts):
    uri, _ = store
    a = with_host('node-a', shared_mount, mounts, uri, 'ta', opts=['debounce_ms=60000'])
    srcs = sources(2)
    copy_in(a, srcs)
    for p in H.daemon_pids(a.mnt):
        os.kill(p, signal.SIGKILL)
    wait_for(lambda: not any(H.pid_alive(p) for p in a.pids), 'daemon survived', 30)
    subprocess.run(['fusermount3', '-u', '-z', a.mnt], capture_output=True)
    a.pids = []
    b = with_host('node-b', shared_mount, mounts, uri, 'tb')
    t = wait_for(lambda: b.stats()['staged_files'] == 0, 'not taken over', 30)
    check(b, srcs)
    assert t


def test_deleted_blobs_wait_for_readers_of_other_nodes(store, mounts):
    """An object replaced by gc while another node holds the file open: its blob stays until no
    handle that may read it is open anywhere, even with no grace period."""
    uri, blobs = store
    a = with_host('node-a', shared_mount, mounts, uri, 'xa')
    b = with_host('node-b', shared_mount, mounts, uri, 'xb')
    srcs = sources(4)
    copy_in(a, srcs)
    flush_node(a)
    keep = srcs[0]
    want = open(keep, 'rb').read()
    # opened on node b, nothing read yet: its object's blob is opened only at the first read
    fd = os.open(b.p(os.path.basename(keep)), os.O_RDONLY)
    try:
        time.sleep(6)                    # node b publishes its oldest open handle
        for s in srcs[1:]:
            os.unlink(a.p(os.path.basename(s)))
        env = dict(os.environ, TPDEFS_HOST='node-c', TPDEFS_TRASH_GRACE_S='0')
        r = admin('gc', uri, env=env)
        assert r.returncode == 0 and 're-encoded' in r.stdout, r.stdout + r.stderr
        assert os.pread(fd, len(want) + 1, 0) == want
    finally:
        os.close(fd)
    time.sleep(6)                        # the handle is gone from node b's published state
    r = admin('gc', uri, env=dict(os.environ, TPDEFS_HOST='node-c', TPDEFS_TRASH_GRACE_S='0'))
    assert r.returncode == 0, r.stdout + r.stderr
    st = a.stats()
    assert len(os.listdir(os.path.join(blobs, 'objects'))) == st['objects'], st
    check(a, srcs[:1])
    check(b, srcs[:1])


def test_wrong_credentials_and_newer_format(pg, store, mounts):
    uri, _ = store
    mnt = mounts.localdir('cred-mnt')
    local = mounts.localdir('cred-local')
    pg.psql("CREATE ROLE pwuser LOGIN PASSWORD 'right'")
    db = uri.rsplit('/', 1)[1]
    pg.psql(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO pwuser', db)
    wrong = uri.replace('postgres@', 'pwuser:wrong@')
    r = daemon(wrong, mnt, '-o', f'local_dir={local}')
    msg = r.stderr.strip()
    assert r.returncode != 0 and 'password authentication failed' in msg, msg
    assert len(msg.splitlines()) == 1 and 'wrong' not in msg, msg
    # the right password, given the way users should: PGPASSWORD
    env = dict(os.environ, PGPASSWORD='right')
    r = admin('stats', uri.replace('postgres@', 'pwuser@'), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    pg.psql("UPDATE meta SET value='99' WHERE key='version'", db)
    r = daemon(uri, mnt, '-o', f'local_dir={local}')
    msg = r.stderr.strip()
    assert r.returncode != 0 and 'newer' in msg and len(msg.splitlines()) == 1, msg
    pg.psql("UPDATE meta SET value='1' WHERE key='version'", db)
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
