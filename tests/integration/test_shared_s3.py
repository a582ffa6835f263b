"""A shared store with its blobs in an S3 bucket: metadata in a real PostgreSQL server, blobs in a
real Ceph radosgw (a single-node cluster the test starts on 127.0.0.1), both started here. Format,
mount, read back bit-exact, a second node, a lost node, the node-local cache across a remount and
when damaged, an unreachable endpoint, a damaged object, unfinished uploads, and every refusal
with a clear one-line message and no key in it."""
import os
import secrets
import shutil
import signal
import subprocess
import time

import pytest

import pgserver
import rgwserver
import s3util
import tpdefs_harness as H

pytestmark = [pytest.mark.skipif(not H.fuse_available(), reason='needs /dev/fuse and root'),
              pytest.mark.skipif(not pgserver.available(), reason='needs PostgreSQL (deps.sh)'),
              pytest.mark.skipif(not rgwserver.available(), reason='needs Ceph radosgw (deps.sh)')]

SAMPLE = os.path.join(H.CORPUS, 'gpt_full_state')


@pytest.fixture(scope='module')
def pg():
    s = pgserver.Server()
    yield s
    s.close()


@pytest.fixture(scope='module')
def rgw():
    s = rgwserver.Server()
    old = {k: os.environ.get(k) for k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY',
                                          'TPDEFS_S3_RETRY_S')}
    os.environ['AWS_ACCESS_KEY_ID'] = s.access_key
    os.environ['AWS_SECRET_ACCESS_KEY'] = s.secret_key
    os.environ['TPDEFS_S3_RETRY_S'] = '4'   # an outage becomes EIO within seconds here
    s.client = s3util.Client(s.endpoint, s.access_key, s.secret_key)
    yield s
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    s.close()


_n = [0]


def blobs_uri(rgw, bucket, prefix='tpdefs'):
    return f's3://{bucket}/{prefix}?endpoint={rgw.endpoint}&region=us-east-1'


@pytest.fixture
def store(pg, rgw, mounts):
    """A freshly formatted shared store with blobs in a new bucket: (uri, bucket)."""
    _n[0] += 1
    db, bucket = f's3ckpt{_n[0]}', f'tpdefs-test-{_n[0]}-{os.getpid()}'
    pg.createdb(db)
    uri = pg.uri(db)
    r = admin('format', uri, '--blobs', blobs_uri(rgw, bucket))
    assert r.returncode == 0, r.stdout + r.stderr
    assert rgw.client.bucket_exists(bucket)          # format created it
    return uri, bucket


def admin(*args, timeout=180, env=None):
    return subprocess.run([H.ADMIN_BIN, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


def shared_mount(mounts, uri, name, opts=(), mount=True):
    return mounts.new(name, backing=uri, mount=mount,
                      opts=[f'local_dir={mounts.localdir(name + "-local")}', *opts])


def local_dir(m):
    return [o.split('=', 1)[1] for o in m.opts if o.startswith('local_dir=')][0]


def sources(n=4):
    return [os.path.join(SAMPLE, f) for f in sorted(os.listdir(SAMPLE))[:n]]


def copy_in(m, srcs):
    for s in srcs:
        shutil.copyfile(s, m.p(os.path.basename(s)))


def check(m, srcs):
    for s in srcs:
        assert H.sha256_file(m.p(os.path.basename(s))) == H.sha256_file(s), s


def as_node(name, fn):
    old = os.environ.get('TPDEFS_HOST')
    os.environ['TPDEFS_HOST'] = name
    try:
        return fn()
    finally:
        if old is None:
            del os.environ['TPDEFS_HOST']
        else:
            os.environ['TPDEFS_HOST'] = old


def kill_daemon(m):
    pids = H.daemon_pids(m.mnt)
    for p in pids:
        os.kill(p, signal.SIGKILL)
    deadline = time.time() + 30
    while any(H.pid_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    subprocess.run(['fusermount3', '-u', '-z', m.mnt], capture_output=True)
    m.pids = []


def test_write_read_remount_admin(store, rgw, mounts):
    uri, bucket = store
    m = shared_mount(mounts, uri, 'a')
    srcs = sources()
    copy_in(m, srcs)
    check(m, srcs)                        # staged, before any encode
    # what close committed is in the bucket already (a copy of each staged file)
    assert len(rgw.client.keys(bucket, 'tpdefs/staging/')) == len(srcs)
    r = admin('flush', uri)
    assert r.returncode == 0, r.stdout + r.stderr
    check(m, srcs)
    st = m.stats()
    assert st['objects'] == len(srcs) and st['staged_files'] == 0, st
    assert sum(1 for e in st['files'] if e.get('base_object')) >= len(srcs) - 1, st['files']
    # one blob per object, and the staged copies gone once stored
    objs = rgw.client.keys(bucket, 'tpdefs/objects/')
    assert len(objs) == len(srcs), objs
    assert rgw.client.keys(bucket, 'tpdefs/staging/') == []
    stored = sum(len(rgw.client.get(bucket, k)) for k in objs)
    assert stored == st['stored_bytes'], (stored, st['stored_bytes'])
    m.remount()
    check(m, srcs)
    r = admin('verify', uri)
    assert r.returncode == 0, r.stdout + r.stderr
    os.unlink(m.p(os.path.basename(srcs[0])))
    m.unmount()
    for cmd in (['verify', uri], ['gc', uri], ['stats', uri]):
        r = admin(*cmd)
        assert r.returncode == 0, (cmd, r.stdout + r.stderr)
    m.mount()
    check(m, srcs[1:])


def test_second_node_reads_closed_file_and_takes_over_a_lost_node(store, rgw, mounts):
    uri, bucket = store
    srcs = sources(2)
    a = as_node('node-a', lambda: shared_mount(mounts, uri, 'na', opts=['debounce_ms=600000']))
    b = as_node('node-b', lambda: shared_mount(mounts, uri, 'nb'))
    copy_in(a, srcs)                      # closed on A, staged there, not encoded
    # a copy named by no row (a node that lost its ownership and uploaded anyway) is never
    # read: B and the takeover below read the copy the row names
    copies = rgw.client.keys(bucket, 'tpdefs/staging/')
    assert len(copies) == len(srcs), copies
    ino, sess, seq = copies[0].rsplit('/', 1)[1].split('.')
    rgw.client.put(bucket, f'tpdefs/staging/{ino}.{sess}.{int(seq, 16) + 1:016x}',
                   b'\0' * os.path.getsize(srcs[0]))
    check(b, srcs)                        # close-to-open: B reads them from the bucket's copy
    # A's machine is lost: daemon killed, its local disk gone
    kill_daemon(a)
    shutil.rmtree(local_dir(a))
    deadline = time.time() + 60
    while time.time() < deadline:         # B takes A's staged files over by itself
        if b.stats()['staged_files'] == 0:
            break
        time.sleep(0.5)
    st = b.stats()
    assert st['staged_files'] == 0 and st['objects'] == len(srcs), st
    check(b, srcs)
    b.remount()
    check(b, srcs)


def test_cache_survives_remount_serves_without_endpoint_and_is_checked(store, rgw, mounts):
    uri, bucket = store
    m = shared_mount(mounts, uri, 'c')
    srcs = sources(2)
    copy_in(m, srcs)
    m.flush()
    m.remount()
    check(m, srcs)                        # cold page cache, warm block cache
    stores = os.listdir(os.path.join(local_dir(m), 'blobcache'))
    assert len(stores) == 1, stores       # one cache directory per store (its id)
    cache = os.path.join(local_dir(m), 'blobcache', stores[0])
    blocks = sorted(os.listdir(cache))
    assert blocks, 'no cached blocks'
    m.remount()
    rgw.stop_rgw()
    try:
        check(m, srcs)                    # the endpoint is down: every byte from the cache
    finally:
        rgw.start_rgw()
    # a damaged cached block is never served: with the endpoint down, EIO
    m.unmount()
    victim = os.path.join(cache, blocks[len(blocks) // 2])
    with open(victim, 'r+b') as f:
        f.seek(os.path.getsize(victim) - 100)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x55]))
    m.mount()                             # a mount checks the bucket and the key
    rgw.stop_rgw()
    try:
        bad = 0
        for s in srcs:
            try:
                if H.sha256_file(m.p(os.path.basename(s))) != H.sha256_file(s):
                    pytest.fail(f'{s}: wrong bytes returned from a damaged cache block')
            except OSError as e:
                assert e.errno == 5, e
                bad += 1
        assert bad >= 1, bad
    finally:
        rgw.start_rgw()
    check(m, srcs)                        # the endpoint is back: fetched again, bit-exact


def test_unreachable_endpoint_is_eio_then_recovers(store, rgw, mounts):
    uri, bucket = store
    m = shared_mount(mounts, uri, 'u')
    srcs = sources(2)
    copy_in(m, srcs)
    m.flush()
    m.unmount()
    shutil.rmtree(os.path.join(local_dir(m), 'blobcache'))   # a cold node
    m.mount()
    rgw.stop_rgw()
    try:
        t0 = time.time()
        with pytest.raises(OSError) as ei:
            H.sha256_file(m.p(os.path.basename(srcs[0])))
        assert ei.value.errno == 5
        assert time.time() - t0 < 60
    finally:
        rgw.start_rgw()
    check(m, srcs)                        # the same mount recovers by itself
    log = m.read_log()
    assert 'S3' in log or 's3' in log or '127.0.0.1' in log, log[-2000:]
    assert rgw.secret_key not in log


def test_damaged_object_is_eio_and_named_by_verify(store, rgw, mounts):
    uri, bucket = store
    m = shared_mount(mounts, uri, 'd')
    srcs = sources(1)
    copy_in(m, srcs)
    m.flush()
    m.unmount()
    key = rgw.client.keys(bucket, 'tpdefs/objects/')[0]
    data = bytearray(rgw.client.get(bucket, key))
    data[len(data) // 2] ^= 0xff
    rgw.client.put(bucket, key, bytes(data))
    shutil.rmtree(os.path.join(local_dir(m), 'blobcache'))
    m.mount()
    with pytest.raises(OSError) as ei:
        H.sha256_file(m.p(os.path.basename(srcs[0])))
    assert ei.value.errno == 5
    m.unmount()
    r = admin('verify', uri)
    assert r.returncode == 1, r.stdout + r.stderr
    obj_id = int(key.rsplit('/', 1)[1].split('.')[0], 16)
    assert f'object {obj_id}' in r.stdout + r.stderr, r.stdout + r.stderr


def test_gc_aborts_unfinished_uploads_and_removes_orphans(store, rgw, mounts):
    uri, bucket = store
    m = shared_mount(mounts, uri, 'g')
    copy_in(m, sources(1))
    m.flush()
    m.unmount()
    rgw.client.start_upload(bucket, 'tpdefs/objects/00000000000fffff.tpdo')
    rgw.client.put(bucket, 'tpdefs/objects/00000000000ffffe.tpdo', b'orphan')
    # a staged file's copy whose commit never happened (no such inode)
    orphan = 'tpdefs/staging/00000000000ffffd.0000000000000007.0000000000000001'
    rgw.client.put(bucket, orphan, b'never committed')
    assert rgw.client.uploads(bucket)
    r = admin('gc', uri)
    assert r.returncode == 0, r.stdout + r.stderr
    assert rgw.client.uploads(bucket) == []
    keys = rgw.client.keys(bucket, 'tpdefs/')
    assert 'tpdefs/objects/00000000000ffffe.tpdo' not in keys, keys
    assert orphan not in keys, keys
    assert len([k for k in keys if k.startswith('tpdefs/objects/')]) == 1, keys
    r = admin('verify', uri)
    assert r.returncode == 0, r.stdout + r.stderr


def one_line_error(r, *secrets):
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out
    for s in secrets:
        assert s not in out, out
    return lines[0]


def test_refusals(pg, rgw, mounts):
    _n[0] += 1
    db, bucket = f's3ref{_n[0]}', f'tpdefs-ref-{_n[0]}-{os.getpid()}'
    pg.createdb(db)
    uri = pg.uri(db)
    good = blobs_uri(rgw, bucket)
    # keys missing
    env = {k: v for k, v in os.environ.items() if not k.startswith('AWS_')}
    line = one_line_error(admin('format', uri, '--blobs', good, env=env))
    assert 'AWS_ACCESS_KEY_ID' in line, line
    # a wrong secret
    env = dict(os.environ, AWS_SECRET_ACCESS_KEY='not-the-secret-' + 'x' * 20)
    line = one_line_error(admin('format', uri, '--blobs', good, env=env),
                          rgw.secret_key, 'not-the-secret-')
    assert 'denied' in line.lower() or '403' in line or 'signature' in line.lower(), line
    # keys in the URI are refused, not used
    one_line_error(admin('format', uri, '--blobs',
                         f's3://{rgw.access_key}:{rgw.secret_key}@{bucket}/p'), rgw.secret_key)
    # an endpoint nobody answers on
    dead = f's3://{bucket}/p?endpoint=http://127.0.0.1:{rgwserver.free_port()}'
    env = dict(os.environ, TPDEFS_S3_RETRY_S='1')
    one_line_error(admin('format', uri, '--blobs', dead, env=env))
    # a prefix that is not empty, and one that holds another store
    rgw.client.request('PUT', bucket)
    rgw.client.put(bucket, 'busy/something', b'x')
    line = one_line_error(admin('format', uri, '--blobs', blobs_uri(rgw, bucket, 'busy')))
    assert 'not empty' in line, line
    r = admin('format', uri, '--blobs', good)
    assert r.returncode == 0, r.stdout + r.stderr
    pg.createdb(db + 'b')
    line = one_line_error(admin('format', pg.uri(db + 'b'), '--blobs', good))
    assert 'already holds' in line, line
    # mount: a wrong key is one line at mount
    m = shared_mount(mounts, uri, 'r', mount=False)
    old = os.environ['AWS_SECRET_ACCESS_KEY']
    os.environ['AWS_SECRET_ACCESS_KEY'] = 'wrong' * 8
    try:
        rc, out = m.run_mount()
    finally:
        os.environ['AWS_SECRET_ACCESS_KEY'] = old
    assert rc != 0
    assert 'wrong' * 8 not in out
    assert len([ln for ln in out.splitlines() if ln.strip()]) == 1, out
    # S3 options on a store that is not in a bucket
    d = mounts.new('plain', mount=False, opts=['blob_cache=1G'])
    rc, out = d.run_mount()
    assert rc != 0 and 'blob_cache' in out, out


def test_close_during_an_outage_is_eio_and_the_data_stays(store, rgw, mounts):
    """A close whose upload cannot reach the endpoint reports EIO (the file is not durable yet)
    instead of succeeding; the bytes stay staged on the node, and once the endpoint is back they
    are stored, bit-exact."""
    uri, bucket = store
    m = shared_mount(mounts, uri, 'o', opts=['debounce_ms=600000'])
    src = sources(1)[0]
    data = open(src, 'rb').read()
    rgw.stop_rgw()
    try:
        f = open(m.p('during.pt'), 'wb')
        f.write(data)
        with pytest.raises(OSError) as ei:
            f.close()
        assert ei.value.errno == 5
    finally:
        rgw.start_rgw()
    # once back: an fsync (or the next close) uploads it, and it is stored as written
    fd = os.open(m.p('during.pt'), os.O_WRONLY)
    os.fsync(fd)
    os.close(fd)
    m.flush()
    assert H.sha256_file(m.p('during.pt')) == H.sha256_file(src)
    m.remount()
    assert H.sha256_file(m.p('during.pt')) == H.sha256_file(src)
    assert m.stats()['staged_files'] == 0


def _new_key():
    return 'TPDC' + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)[:40]


def _write_creds(path, ak, sk):
    tmp = str(path) + '.new'
    with open(tmp, 'w') as f:
        f.write(f'[default]\naws_access_key_id = {ak}\naws_secret_access_key = {sk}\n')
    os.rename(tmp, path)                  # as aws-vault and credential_process writers do


def test_rotated_credentials_file_without_remount(store, rgw, mounts, tmp_path):
    """A mount whose keys come from -o s3_credentials=FILE goes on working when the file is
    rewritten with a new key and the old key is taken away: no remount, no error, no key in the
    log."""
    uri, bucket = store
    cred = tmp_path / 'credentials'
    a, b = _new_key(), _new_key()
    rgw.add_key(*a)
    _write_creds(cred, *a)
    m = shared_mount(mounts, uri, 'rot', opts=[f's3_credentials={cred}'])
    srcs = sources(3)
    copy_in(m, srcs[:1])                  # close uploads the staged copy with key A
    rgw.add_key(*b)
    _write_creds(cred, *b)
    rgw.remove_key(a[0])
    try:
        copy_in(m, srcs[1:])              # closes upload with key B
        m.flush()                         # the daemon encodes and uploads: key B
        check(m, srcs)
        st = m.stats()
        assert st['objects'] == len(srcs) and st['staged_files'] == 0, st
        assert len(rgw.client.keys(bucket, 'tpdefs/objects/')) == len(srcs)
    finally:
        rgw.remove_key(b[0])
    log = m.read_log()
    assert 'new keys loaded' in log, log[-2000:]
    for _, sk in (a, b):
        assert sk not in log
